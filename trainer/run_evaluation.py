"""A trained run's evaluation: per-class tables on validation and test, temperature scaling with
ECE before/after and the "unknown" threshold, and the report's plots (confusion matrix, curves,
worst mistakes, reliability).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from catalog.settings_sections import TrainSettings
from models.openset import softmax
from trainer import backbones, calibration, report
from trainer.dataset import Item, PixelLoader
from trainer.evaluate import classification_table, predict_logits

log = logging.getLogger(__name__)

MISTAKES_SHOWN = 16


def _evaluate(
    built: backbones.BuiltBackbone,
    labels: list[str],
    val_items: list[Item],
    test_items: list[Item],
    loader: PixelLoader,
    device: torch.device,
    cfg: TrainSettings,
) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(labels)}
    y_val = np.array([index[i.label] for i in val_items], dtype=np.int64)
    y_test = np.array([index[i.label] for i in test_items], dtype=np.int64)
    val_logits = predict_logits(built.net, val_items, loader, device=device, batch_size=cfg.batch_size * 2)
    test_logits = predict_logits(built.net, test_items, loader, device=device, batch_size=cfg.batch_size * 2)
    temperature, fitted_temperature = calibration.shipped_temperature(val_logits, y_val)
    probs = {
        (name, scaled): softmax(logits, 1.0 / temperature if scaled else 1.0)
        for name, logits in (("val", val_logits), ("test", test_logits))
        for scaled in (False, True)
    }
    choice = calibration.threshold_for_precision(probs["val", True], y_val, cfg.target_precision)
    test_conf = probs["test", True].max(axis=1)
    accepted = test_conf >= choice.threshold
    test_hits = probs["test", True].argmax(axis=1) == y_test
    ece = {
        key: calibration.expected_calibration_error(p, y_val if key[0] == "val" else y_test)
        for key, p in probs.items()
    }
    return {
        "val": classification_table(y_val, val_logits.argmax(1), labels),
        "test": classification_table(y_test, test_logits.argmax(1), labels),
        "calibration": {
            "temperature": temperature,
            "fitted_temperature": fitted_temperature,
            "ece_before": ece["test", False],
            "ece_after": ece["test", True],
            "val_ece_before": ece["val", False],
            "val_ece_after": ece["val", True],
            "target_precision": cfg.target_precision,
            "threshold": choice.threshold,
            "threshold_precision": choice.precision,
            "threshold_coverage": choice.coverage,
            "threshold_reached_target": choice.reached_target,
            "test_precision_at_threshold": float(test_hits[accepted].mean()) if accepted.any() else 0.0,
            "test_coverage_at_threshold": float(accepted.mean()) if len(accepted) else 0.0,
            "reliability_before": calibration.reliability(probs["test", False], y_test),
            "reliability_after": calibration.reliability(probs["test", True], y_test),
        },
        "_test_probs": probs["test", True],
        "_y_test": y_test,
    }


def _plots(
    run_dir: Path,
    full: dict[str, Any],
    evaluation: dict[str, Any],
    test_items: list[Item],
    loader: PixelLoader,
    history: Any,
) -> None:
    labels = full["labels"]
    probs = evaluation.pop("_test_probs")
    y_test = evaluation.pop("_y_test")
    full.pop("_test_probs", None)
    full.pop("_y_test", None)
    report.plot_confusion(
        full["test"]["confusion_matrix"], labels, run_dir / report.CONFUSION_PNG,
        f"test set confusion (macro-F1 {full['metrics']['test_macro_f1']:.3f})",
    )  # fmt: skip
    report.plot_curves(history.as_dict()["epochs"], run_dir / report.CURVES_PNG)
    predicted = probs.argmax(axis=1) if len(probs) else np.zeros(0, dtype=np.int64)
    wrong = np.nonzero(predicted != y_test)[0]
    wrong = wrong[np.argsort(-probs[wrong, predicted[wrong]], kind="stable")][:MISTAKES_SHOWN]
    mistakes = [
        {
            "key": test_items[i].key,
            "true": labels[y_test[i]],
            "predicted": labels[predicted[i]],
            "confidence": float(probs[i, predicted[i]]),
        }
        for i in wrong
    ]
    if len(wrong):
        shown, title = wrong, "worst mistakes on the test set (most confident first)"
    else:  # a grid of the closest calls says more than an empty picture
        confidence = probs[np.arange(len(probs)), predicted] if len(probs) else np.zeros(0)
        shown = np.argsort(confidence, kind="stable")[:MISTAKES_SHOWN]
        title = "no mistakes on the test set: its least confident answers"
    captions = [
        {
            "true": labels[y_test[i]],
            "predicted": labels[predicted[i]],
            "confidence": float(probs[i, predicted[i]]),
        }
        for i in shown
    ]
    report.plot_mistakes(
        captions, [loader(test_items[i]) for i in shown], run_dir / report.MISTAKES_PNG, title=title
    )
    cal = full["calibration"]
    report.plot_reliability(
        cal["reliability_before"], cal["reliability_after"], run_dir / report.RELIABILITY_PNG,
        cal["ece_before"], cal["ece_after"],
    )  # fmt: skip
    full["worst_mistakes"] = mistakes

"""The evaluation report in the run folder: report.json, report.md and the plots.

Plots (matplotlib, Agg backend, no display needed): `confusion_matrix.png` with class names,
`curves.png` (loss and accuracy per epoch, train and validation), `worst_mistakes.png` (the test
images the model got wrong most confidently, with true and predicted names) and `reliability.png`
(calibration before and after temperature scaling).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

CONFUSION_PNG = "confusion_matrix.png"
CURVES_PNG = "curves.png"
MISTAKES_PNG = "worst_mistakes.png"
RELIABILITY_PNG = "reliability.png"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def plot_confusion(matrix: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    cm = np.asarray(matrix, dtype=np.int64)
    size = max(5.0, 0.55 * len(labels) + 3)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    row_sums = np.maximum(cm.sum(axis=1, keepdims=True), 1)
    shown = ax.imshow(cm / row_sums, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 30:
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                if cm[i, j]:
                    dark = cm[i, j] / row_sums[i, 0] > 0.5
                    ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=7,
                            color="white" if dark else "black")  # fmt: skip
    fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_curves(epochs: list[dict[str, Any]], path: Path) -> Path:
    x = [e["epoch"] + 1 for e in epochs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(x, [e["train_loss"] for e in epochs], marker="o", label="train")
    left.plot(x, [e["val_loss"] for e in epochs], marker="o", label="validation")
    left.set_title("loss")
    left.set_xlabel("epoch")
    left.legend()
    right.plot(x, [e["train_accuracy"] for e in epochs], marker="o", label="train accuracy")
    right.plot(x, [e["val_accuracy"] for e in epochs], marker="o", label="validation accuracy")
    right.plot(
        x, [e["val_macro_f1"] for e in epochs], marker="s", linestyle="--", label="validation macro-F1"
    )
    right.set_ylim(0, 1.02)
    right.set_title("accuracy")
    right.set_xlabel("epoch")
    right.legend(loc="lower right")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_mistakes(
    mistakes: list[dict[str, Any]],
    images: list[np.ndarray],
    path: Path,
    max_shown: int = 16,
    title: str = "worst mistakes on the test set (most confident first)",
) -> Path:
    """`mistakes[i]` (true, predicted, confidence) captions `images[i]`; wrong answers in red."""
    shown = min(max_shown, len(mistakes))
    cols = 4
    rows = max(1, math.ceil(shown / cols))
    fig, axes = plt.subplots(
        rows, cols, figsize=(3.1 * cols, 3.6 * rows + 0.4), squeeze=False, layout="constrained"
    )
    for ax in axes.flat:
        ax.axis("off")
    if shown == 0:
        axes[0, 0].text(0.0, 0.5, "the test set is empty", fontsize=14)
    for ax, mistake, image in zip(axes.flat, mistakes[:shown], images[:shown], strict=False):
        ax.imshow(image)
        ax.set_title(
            f"true: {mistake['true']}\npred: {mistake['predicted']} ({mistake['confidence']:.2f})",
            fontsize=8,
            color="darkred" if mistake["true"] != mistake["predicted"] else "darkgreen",
        )
    fig.suptitle(title)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_reliability(before: list[dict[str, float]], after: list[dict[str, float]], path: Path,
                     ece_before: float, ece_after: float) -> Path:  # fmt: skip
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    for rows, name, ece in ((before, "before", ece_before), (after, "after", ece_after)):
        used = [r for r in rows if r["count"]]
        ax.plot([r["confidence"] for r in used], [r["accuracy"] for r in used], marker="o",
                label=f"{name} temperature scaling (ECE {ece:.3f})")  # fmt: skip
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_title("reliability on the test set")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _table(table: dict[str, Any]) -> list[str]:
    lines = ["| class | precision | recall | F1 | support |", "|---|---:|---:|---:|---:|"]
    for name, row in table["per_class"].items():
        lines.append(
            f"| {name} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    for key in ("macro", "weighted"):
        row = table[key]
        lines.append(
            f"| **{key} avg** | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    lines.append(f"| **accuracy** | | | {table['accuracy']:.3f} | {table['support']} |")
    return lines


def write_markdown(report: dict[str, Any], path: Path) -> Path:
    m = report["metrics"]
    cal = report["calibration"]
    data = report["dataset"]
    weights = (
        f"ImageNet-pretrained ({report['weights_source']})"
        if m["pretrained"]
        else "**RANDOM INIT** (no ImageNet weights could be had)"
    )
    best_epoch = report["history"]["best_epoch"] + 1
    temperature = f"Temperature scaling fitted on validation: T = {cal['temperature']:.3f}."
    if abs(cal.get("fitted_temperature", cal["temperature"]) - cal["temperature"]) > 1e-9:
        temperature = (
            f"Temperature scaling: the NLL fit (T = {cal['fitted_temperature']:.3f}) raised the validation "
            "ECE, so T = 1 is kept."
        )
    reached = "" if cal["threshold_reached_target"] else ", target NOT reached"
    threshold = (
        f'"unknown" threshold for a target precision of {cal["target_precision"]:.2f}: '
        f"**{cal['threshold']:.3f}** (validation precision {cal['threshold_precision']:.3f}, "
        f"coverage {cal['threshold_coverage']:.3f}{reached}); on test: precision "
        f"{cal['test_precision_at_threshold']:.3f}, coverage {cal['test_coverage_at_threshold']:.3f}."
    )
    lines = [
        f"# Training run {report['run']}",
        "",
        f"- backbone: **{m['backbone']}** at {m['image_size']} px, {weights}",
        f"- device: {report['device']}, {report['world_size']} process(es), {m['seconds']:.1f} s",
        (
            f"- test macro-F1 **{m['test_macro_f1']:.4f}**, test accuracy {m['test_accuracy']:.4f}, "
            f"validation macro-F1 {m['val_macro_f1']:.4f} (best epoch {best_epoch})"
        ),
        (
            f"- dataset: {data['source']}, {len(report['labels'])} classes, {data['images']} images "
            f"(train {data['train']}, validation {data['val']}, test {data['test']}); fingerprint "
            f"`{data['fingerprint']}`; frozen test set `{data['test_set_fingerprint']}`"
        ),
        "",
        "## Test set (frozen)",
        "",
        *_table(report["test"]),
        "",
        "## Validation set",
        "",
        *_table(report["val"]),
        "",
        "## Calibration",
        "",
        temperature,
        "",
        "| set | ECE before | ECE after |",
        "|---|---:|---:|",
        f"| validation | {cal['val_ece_before']:.4f} | {cal['val_ece_after']:.4f} |",
        f"| test | {cal['ece_before']:.4f} | {cal['ece_after']:.4f} |",
        "",
        threshold,
        "",
        *_open_set_lines(report.get("open_set")),
        "## Plots",
        "",
        f"![confusion matrix]({CONFUSION_PNG})",
        f"![curves]({CURVES_PNG})",
        f"![worst mistakes]({MISTAKES_PNG})",
        f"![reliability]({RELIABILITY_PNG})",
        "",
        "## Data notes",
        "",
    ]
    skipped = data.get("skipped") or {}
    lines += [f"- skipped {count} item(s): {reason}" for reason, count in sorted(skipped.items())] or [
        "- nothing skipped"
    ]
    lines += [
        f"- {count} face(s) of pictures with several, the one model {version} named as the folder's "
        "character: trained on, never validated or tested on"
        for version, count in sorted((data.get("picked_from_groups") or {}).items())
    ]
    lines += [f"- warning: {w}" for w in data.get("warnings", [])]
    lines += ["", "## Augmentation", "", *[f"- {a}" for a in report["augmentation"]], ""]
    path.write_text("\n".join(lines))
    return path


def _open_set_lines(open_set: dict[str, Any] | None) -> list[str]:
    """The open-set thresholds fitted with the character memory, and what they do on test faces."""
    if not open_set:
        return []
    th = open_set["thresholds"]
    kinds = open_set.get("test_kinds", {})
    lines = [
        "## Open-set answers (character memory)",
        "",
        (
            f"Fitted on {th['fitted_on'].get('held_out_faces', 0)} validation faces against a memory of "
            f"{th['fitted_on'].get('memory_faces', 0)} training faces, for a target precision of "
            f"{th['target_precision']:.2f}: name at confidence >= {th['name']:.3f}, "
            f'"one of these two" at >= {th["pair"]:.3f}, "a character I don\'t know" below evidence '
            f'{th["known"]:.3f}, "not a character" below similarity {th["not_character"]:.3f}; characters '
            f"outside the trained head are named from {th['min_examples']} faces."
        ),
        "",
        (
            f"- validation: coverage {open_set.get('held_out_coverage', 0):.3f}, precision "
            f"{open_set.get('held_out_precision', 0):.3f}; characters left out of the memory named "
            f"{open_set.get('pseudo_strangers_named', 0):.3f}"
        ),
    ]
    if "test_coverage" in open_set:
        lines.append(
            f"- test: coverage **{open_set['test_coverage']:.3f}**, precision "
            f"**{open_set['test_precision']:.3f}**, macro-F1 of what is answered "
            f"{open_set['test_macro_f1_answered']:.4f}; kinds "
            + ", ".join(f"{k} {v:.3f}" for k, v in kinds.items())
        )
    return [*lines, ""]


def write_json(report: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(report, indent=1, default=str))
    return path

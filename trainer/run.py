"""`train_run`: the one training entry the CLI, the worker and torchrun call.

catalog or folder -> class filter and cap -> leak-free split with the frozen test set -> backbone ->
training loop -> evaluation (per-class table, confusion matrix, curves, worst mistakes) ->
temperature scaling, ECE before/after and the "unknown" threshold -> the open-set thresholds and the
character memory (trainer.openset) -> report.json/report.md -> ONNX export with parity check ->
registered candidate. Promotion is the caller's decision.
Every failure before registration leaves the registry, and so the active model, untouched.
"""

from __future__ import annotations

import hashlib
import json
import logging
import platform
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from sqlalchemy import Engine

from catalog.objects import ObjectStore, open_objects
from catalog.settings import Settings, TrainSettings
from trainer import TrainingError, TrainingInterrupted, augment, backbones, calibration, ddp, openset, report
from trainer.catalog_source import from_catalog
from trainer.checkpoints import LAST, check_compatible, load_checkpoint
from trainer.dataset import Assembled, Item, PixelLoader, check_trainable, filter_classes
from trainer.epoch import LoopConfig
from trainer.evaluate import classification_table, predict_logits
from trainer.folder_source import from_folder
from trainer.loop import fit, seed_everything
from trainer.progress import Display, ProgressOption, progress_display
from trainer.splits import FrozenTestSet, Split, split

log = logging.getLogger(__name__)

PARITY_IMAGES = 64
MISTAKES_SHOWN = 16


@dataclass
class TrainResult:
    run_dir: Path
    version: str | None
    metrics: dict[str, Any]
    report_path: Path


def resolve_device(requested: str) -> str:
    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device {requested!r} requested but no CUDA GPU is available")
    return requested


def frozen_test_key(from_folder: Path | None) -> str:
    """One frozen test set per data source: the catalog's, or one per training folder."""
    if from_folder is None:
        return "catalog.json"
    digest = hashlib.sha256(str(from_folder.resolve()).encode()).hexdigest()[:12]
    return f"folder-{from_folder.name}-{digest}.json"


def frozen_test_store(settings: Settings) -> ObjectStore:
    """Where frozen test sets live: beside the images and models, so that a retrain on another
    machine is measured on the same test images (the promotion gate compares like with like)."""
    return open_objects(settings, "frozen_test")


def _resolved_train_settings(settings: Settings, **overrides: Any) -> TrainSettings:
    """The training settings with the command's options applied, checked by the same rules as
    the settings themselves (an unknown backbone, a size out of range)."""
    given = {k: v for k, v in overrides.items() if v is not None}
    try:
        return TrainSettings.model_validate({**settings.train.model_dump(), **given})
    except ValidationError as exc:
        reasons = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'train'}={e.get('input')!r}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors(include_url=False)
        )
        raise TrainingError(f"invalid training settings: {reasons}") from None


def _attach_log_file(run_dir: Path) -> tuple[logging.Handler, dict[str, int]]:
    """train.log in the run folder gets INFO from the trainer and the exporter, whatever the
    console shows; the loggers' previous levels come back afterwards."""
    handler = logging.FileHandler(run_dir / "train.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)
    previous = {}
    for name in ("trainer", "models"):
        logger = logging.getLogger(name)
        previous[name] = logger.level
        logger.addHandler(handler)
        if logger.getEffectiveLevel() > logging.INFO:
            logger.setLevel(logging.INFO)
    return handler, previous


def _detach_log_file(handler: logging.Handler, previous: dict[str, int]) -> None:
    for name, level in previous.items():
        logger = logging.getLogger(name)
        logger.removeHandler(handler)
        logger.setLevel(level)
    handler.close()


def train_run(
    settings: Settings,
    engine: Engine | None,
    *,
    from_folder: Path | None = None,
    backbone: str | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    device: str | None = None,
    resume: Path | None = None,
    progress: ProgressOption = True,
    register: bool = True,
    on_progress: Callable[[float, str], None] | None = None,
) -> TrainResult:
    """Train, evaluate, calibrate, report and (with `register`) export a candidate version.
    Under torchrun (WORLD_SIZE > 1) every rank calls this; rank 0 alone writes and exports.

    `resume` (a run's last.pt) continues that run with the settings and the folder it was started
    with (its config.json), unless given again here. Stopped by Ctrl-C or SIGTERM, it raises
    `TrainingInterrupted`, naming the checkpoint to resume from."""
    started = time.monotonic()
    recorded = recorded_run(resume) if resume is not None else None
    if recorded is not None:
        settings = settings.model_copy(update={"train": recorded.train})
        from_folder = from_folder if from_folder is not None else recorded.from_folder
    cfg = _resolved_train_settings(
        settings, backbone=backbone, epochs=epochs, image_size=image_size, device=device
    )
    device_name = resolve_device(cfg.device)
    dist_ctx = ddp.from_environment(device_name)
    owns_group = dist_ctx.enabled
    try:
        return _train(settings, engine, cfg, device_name, dist_ctx, from_folder=from_folder, resume=resume,
                      progress=progress, register=register, on_progress=on_progress, started=started)  # fmt: skip
    finally:
        if owns_group:
            ddp.shutdown(dist_ctx)


def _report_progress(on_progress: Callable[[float, str], None] | None, fraction: float, message: str) -> None:
    if on_progress is not None:
        on_progress(max(0.0, min(1.0, fraction)), message)


def _train(
    settings: Settings,
    engine: Engine | None,
    cfg: TrainSettings,
    device_name: str,
    dist_ctx: ddp.DistContext,
    *,
    from_folder: Path | None,
    resume: Path | None,
    progress: ProgressOption,
    register: bool,
    on_progress: Callable[[float, str], None] | None,
    started: float,
) -> TrainResult:
    seed_everything(cfg.seed)
    torch_device = dist_ctx.device(device_name)
    checkpoint = load_checkpoint(resume) if resume is not None else None

    # --- the run folder, named by rank 0 -------------------------------------------------------
    if resume is not None:
        run_dir = resume.parent
    else:
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-%f")
        run_dir = Path(dist_ctx.broadcast(str(settings.runs_dir / f"{stamp}-{cfg.backbone}")))
    log_file: tuple[logging.Handler, dict[str, int]] | None = None
    if dist_ctx.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        log_file = _attach_log_file(run_dir)
    shown = ExitStack()
    try:
        display = shown.enter_context(progress_display(progress if dist_ctx.is_main else False))
        _report_progress(on_progress, 0.01, "assembling the dataset")
        assembled, data_split = _dataset(settings, engine, cfg, from_folder, display)
        labels = assembled.labels
        items = assembled.items
        train_items = [items[i] for i in data_split.train]
        val_items = [items[i] for i in data_split.val]
        test_items = [items[i] for i in data_split.test]
        if not val_items or not test_items:
            raise TrainingError(
                f"too few images to hold out validation ({len(val_items)}) and test ({len(test_items)}) "
                f"images from {len(items)}; add images or lower the minimum per class"
            )
        built = backbones.build(
            cfg.backbone,
            len(labels),
            cfg.image_size,
            weights_dir=settings.data_dir / "weights",
            loss=cfg.loss,
        )
        if dist_ctx.is_main:
            if built.pretrained:
                log.info("backbone %s: ImageNet weights from %s", cfg.backbone, built.weights_source)
            else:
                log.warning("backbone %s: RANDOM INIT, no ImageNet weights could be had", cfg.backbone)
        if checkpoint is not None:
            check_compatible(
                checkpoint, labels=labels, backbone=cfg.backbone, image_size=cfg.image_size, loss=cfg.loss
            )
        resolved = _resolved_config(
            settings, cfg, device_name, dist_ctx, assembled, data_split, built, from_folder
        )
        if dist_ctx.is_main:
            (run_dir / "config.json").write_text(json.dumps(resolved, indent=1, default=str))
        _report_progress(on_progress, 0.05, f"training {cfg.backbone} on {len(train_items)} images")

        loader = PixelLoader(settings, cfg.image_size)

        def on_epoch(stats: Any, total: int) -> None:
            _report_progress(
                on_progress,
                0.05 + 0.8 * (stats.epoch + 1) / total,
                f"epoch {stats.epoch + 1}/{total}: val macro-F1 {stats.val_macro_f1:.3f}",
            )

        history = fit(
            built.net,
            train_items=train_items,
            val_items=val_items,
            labels=labels,
            loader=loader,
            transform=augment.train_transform(cfg.image_size),
            config=LoopConfig.from_settings(cfg),
            device=torch_device,
            run_dir=run_dir,
            meta={"labels": labels, "backbone": cfg.backbone, "image_size": cfg.image_size, "loss": cfg.loss},
            dist_ctx=dist_ctx,
            resume=checkpoint,
            progress=display or False,
            on_epoch=on_epoch,
        )
        version: str | None = None
        metrics: dict[str, Any] = {}
        if dist_ctx.is_main:
            _report_progress(on_progress, 0.87, "evaluating")
            data_split.frozen.save(frozen_test_store(settings), frozen_test_key(from_folder))
            evaluation = _evaluate(built, labels, val_items, test_items, loader, torch_device, cfg)
            _report_progress(on_progress, 0.89, "fitting the open-set thresholds and the memory")
            open_world = openset.for_run(
                built.net,
                labels=labels,
                train_items=train_items,
                val_items=val_items,
                test_items=test_items,
                loader=loader,
                device=torch_device,
                image_size=cfg.image_size,
                settings=settings.memory,
                seed=cfg.seed,
                temperature=evaluation["calibration"]["temperature"],
                batch_size=cfg.batch_size * 2,
            )
            evaluation["open_set"] = {
                **open_world.report,
                "thresholds": open_world.thresholds.model_dump(mode="json"),
            }
            metrics = {
                "test_macro_f1": evaluation["test"]["macro"]["f1"],
                "test_accuracy": evaluation["test"]["accuracy"],
                "val_macro_f1": evaluation["val"]["macro"]["f1"],
                "ece_before": evaluation["calibration"]["ece_before"],
                "ece_after": evaluation["calibration"]["ece_after"],
                "threshold": evaluation["calibration"]["threshold"],
                "temperature": evaluation["calibration"]["temperature"],
                "seconds": 0.0,
                "backbone": cfg.backbone,
                "image_size": cfg.image_size,
                "pretrained": built.pretrained,
                "classes": len(labels),
                "test_images": len(test_items),
                "test_set_fingerprint": data_split.frozen.fingerprint(),
                "open_set_test_coverage": open_world.report.get("test_coverage"),
                "open_set_test_precision": open_world.report.get("test_precision"),
            }
            if register:
                _report_progress(on_progress, 0.92, "exporting to ONNX and checking parity")
                version = _export(
                    settings, engine, built, labels, cfg, evaluation, metrics, assembled, val_items, loader,
                    open_world,
                )  # fmt: skip
                log.info("registered candidate version %s", version)
            metrics["seconds"] = round(time.monotonic() - started, 2)
            full = {
                "run": run_dir.name,
                "version": version,
                "metrics": metrics,
                "labels": labels,
                "device": str(torch_device),
                "world_size": dist_ctx.world_size,
                "weights_source": built.weights_source,
                "history": history.as_dict(),
                "dataset": resolved["dataset"],
                "augmentation": augment.describe(),
                **evaluation,
            }
            _plots(run_dir, full, evaluation, test_items, loader, history)
            report.write_json(full, run_dir / report.REPORT_JSON)
            report.write_markdown(full, run_dir / report.REPORT_MD)
            log.info(
                "test macro-F1 %.4f, accuracy %.4f; ECE %.4f -> %.4f; threshold %.3f; %.1fs",
                metrics["test_macro_f1"], metrics["test_accuracy"], metrics["ece_before"],
                metrics["ece_after"], metrics["threshold"], metrics["seconds"],
            )  # fmt: skip
        version, metrics = dist_ctx.broadcast((version, metrics))
        _report_progress(on_progress, 1.0, f"done: test macro-F1 {metrics['test_macro_f1']:.3f}")
        return TrainResult(
            run_dir=run_dir, version=version, metrics=metrics, report_path=run_dir / report.REPORT_JSON
        )
    except KeyboardInterrupt as exc:
        last = run_dir / LAST
        raise TrainingInterrupted(run_dir, last if last.is_file() else None) from exc
    finally:
        shown.close()
        if log_file is not None:
            _detach_log_file(*log_file)


def _dataset(
    settings: Settings,
    engine: Engine | None,
    cfg: TrainSettings,
    from_folder: Path | None,
    display: Display | None = None,
) -> tuple[Assembled, Split]:
    if from_folder is not None:
        assembled = from_folder_dataset(from_folder, settings, cfg.image_size, display)
    elif engine is None:
        raise TrainingError("no catalog to train from: give a database or --from-folder DIR")
    else:
        assembled = from_catalog(engine, settings, progress=display)
    frozen = FrozenTestSet.load(frozen_test_store(settings), frozen_test_key(from_folder))
    filter_classes(
        assembled,
        min_images=cfg.min_images_per_class,
        max_images=cfg.max_images_per_class,
        seed=cfg.seed,
        keep=set(frozen.members),
    )
    check_trainable(assembled, cfg.min_images_per_class)
    data_split = split(
        assembled.items,
        val_fraction=cfg.val_fraction,
        test_fraction=cfg.test_fraction,
        seed=cfg.seed,
        frozen=frozen,
    )
    return assembled, data_split


def from_folder_dataset(
    folder: Path, settings: Settings, image_size: int, display: Display | None = None
) -> Assembled:
    return from_folder(folder, settings, image_size, progress=display)


@dataclass(frozen=True)
class RecordedRun:
    """What a run was started with, from its config.json."""

    train: TrainSettings
    from_folder: Path | None


def recorded_run(checkpoint: Path) -> RecordedRun | None:
    """The settings and folder of the run that wrote `checkpoint` (None for a checkpoint outside
    a run folder), so that resuming continues that run and not one with today's settings."""
    path = checkpoint.parent / "config.json"
    try:
        config = json.loads(path.read_text())
        folder = config.get("from_folder")
        return RecordedRun(TrainSettings.model_validate(config["train"]), Path(folder) if folder else None)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TrainingError(f"cannot resume: {path} does not say how the run was started ({exc})") from None


def _resolved_config(
    settings: Settings,
    cfg: TrainSettings,
    device_name: str,
    dist_ctx: ddp.DistContext,
    assembled: Assembled,
    data_split: Split,
    built: backbones.BuiltBackbone,
    from_folder: Path | None,
) -> dict[str, Any]:
    return {
        "train": cfg.model_dump(mode="json"),
        "device": device_name,
        "world_size": dist_ctx.world_size,
        "from_folder": str(from_folder.resolve()) if from_folder else None,
        "backbone": {
            "name": built.name,
            "pretrained": built.pretrained,
            "weights_source": built.weights_source,
        },
        "augmentation": augment.describe(),
        "optimizer": "AdamW, linear warm-up 1 epoch, cosine decay per step",
        "loss": (
            f"class-balanced cross-entropy, label smoothing {cfg.label_smoothing}"
            if cfg.loss == "cross_entropy"
            else f"class-balanced {cfg.loss}, margin {cfg.margin}, cosine head"
        ),
        "mixed_precision": "bf16 autocast + channels_last"
        if device_name.startswith("cuda")
        else "fp32 (CPU)",
        "dataset": {
            "source": assembled.source,
            "images": len(assembled.items),
            "classes": assembled.counts(),
            "train": len(data_split.train),
            "val": len(data_split.val),
            "test": len(data_split.test),
            "fingerprint": assembled.fingerprint(),
            "test_set_fingerprint": data_split.frozen.fingerprint(),
            "new_test_classes": data_split.new_test_classes,
            "skipped": dict(assembled.skipped),
            "dropped_classes": assembled.dropped_classes,
            "capped_classes": assembled.capped_classes,
            "warnings": assembled.warnings,
        },
        "versions": {"python": platform.python_version(), "torch": torch.__version__},
        "registry": open_objects(settings, "models").location,
    }


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
    temperature = calibration.fit_temperature(val_logits, y_val)
    fitted_temperature = temperature
    val_ece_raw = calibration.expected_calibration_error(calibration.softmax(val_logits), y_val)
    val_ece_fit = calibration.expected_calibration_error(calibration.softmax(val_logits, temperature), y_val)
    if val_ece_fit > val_ece_raw:
        # NLL-optimal is not ECE-optimal on a small validation set; never ship a worse calibration.
        log.info("temperature %.3f raises validation ECE (%.4f > %.4f); keeping T = 1", temperature,
                 val_ece_fit, val_ece_raw)  # fmt: skip
        temperature = 1.0
    probs = {
        (name, scaled): calibration.softmax(logits, temperature if scaled else 1.0)
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


def _export(
    settings: Settings,
    engine: Engine | None,
    built: backbones.BuiltBackbone,
    labels: list[str],
    cfg: TrainSettings,
    evaluation: dict[str, Any],
    metrics: dict[str, Any],
    assembled: Assembled,
    val_items: list[Item],
    loader: PixelLoader,
    open_world: openset.RunOpenSet,
) -> str:
    from models.registry import Registry
    from trainer.export import export_version

    registry = Registry.from_settings(settings, engine)
    version, parity = export_version(
        built.net.to("cpu").eval(),
        registry=registry,
        labels=labels,
        image_size=cfg.image_size,
        temperature=evaluation["calibration"]["temperature"],
        thresholds=evaluation["calibration"]["threshold"],
        metrics=dict(metrics),
        dataset_fingerprint=assembled.fingerprint(),
        val_images=[loader(item) for item in val_items[:PARITY_IMAGES]],
        backbone=cfg.backbone,
        extra={"pretrained": built.pretrained, "weights_source": built.weights_source, "loss": cfg.loss},
        open_set=open_world.thresholds,
        memory=open_world.memory,
    )
    metrics["parity_max_abs_diff"] = parity.max_abs_diff
    return version

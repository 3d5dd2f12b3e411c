"""`train_run`: the one training entry the CLI, the worker and torchrun call.

catalog or folder -> class filter and cap -> leak-free split with the frozen test set -> backbone ->
training loop, once or for each of `train.members` runs joined as one net (trainer.members) ->
evaluation (per-class table, confusion matrix, curves, worst mistakes) -> temperature scaling, ECE
before/after and the "unknown" threshold -> the open-set thresholds and the character memory
(trainer.openset_run; for several members, member 1's own too: trainer.first_look) ->
report.json/report.md -> ONNX export with parity check -> registered
candidate. Promotion is the caller's decision.
Every failure before registration leaves the registry, and so the active model, untouched.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from pydantic import ValidationError
from sqlalchemy import Engine

from catalog.settings import Settings
from catalog.settings_sections import TrainSettings
from trainer import TrainingError, TrainingInterrupted, augment, ddp, openset_run, report
from trainer.checkpoints import LAST, check_compatible, load_checkpoint
from trainer.dataset import PixelLoader
from trainer.ensemble import Ensemble
from trainer.first_look import fit_first_look
from trainer.loop import seed_everything
from trainer.members import build_member, train_members
from trainer.progress import ProgressOption, progress_display
from trainer.registering import _export
from trainer.run_dataset import _dataset, frozen_test_key, frozen_test_store
from trainer.run_evaluation import _evaluate, _plots
from trainer.run_folder import _attach_log_file, _detach_log_file, _resolved_config, recorded_run

log = logging.getLogger(__name__)


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


def train_run(
    settings: Settings,
    engine: Engine | None,
    *,
    from_folder: Path | None = None,
    backbone: str | None = None,
    epochs: int | None = None,
    image_size: int | None = None,
    device: str | None = None,
    members: int | None = None,
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
        settings, backbone=backbone, epochs=epochs, image_size=image_size, device=device, members=members
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
        built = build_member(settings, cfg, len(labels))
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
        trained = train_members(
            built,
            settings=settings,
            cfg=cfg,
            labels=labels,
            train_items=train_items,
            val_items=val_items,
            loader=loader,
            device=torch_device,
            run_dir=run_dir,
            dist_ctx=dist_ctx,
            resume=checkpoint,
            display=display,
            on_progress=lambda fraction, message: _report_progress(on_progress, fraction, message),
        )
        built, history = trained.built, trained.histories[0]
        version: str | None = None
        metrics: dict[str, Any] = {}
        if dist_ctx.is_main:
            _report_progress(on_progress, 0.87, "evaluating")
            data_split.frozen.save(frozen_test_store(settings), frozen_test_key(from_folder))
            evaluation = _evaluate(built, labels, val_items, test_items, loader, torch_device, cfg)
            first_look = None
            if isinstance(built.net, Ensemble):
                _report_progress(on_progress, 0.88, "fitting member 1's bars: it looks at every face first")
                first_look = fit_first_look(
                    built.net, labels=labels, train_items=train_items, val_items=val_items,
                    loader=loader, device=torch_device, image_size=cfg.image_size,
                    settings=settings.memory, seed=cfg.seed, batch_size=cfg.batch_size * 2,
                )  # fmt: skip
            _report_progress(on_progress, 0.89, "fitting the open-set thresholds and the memory")
            open_world = openset_run.for_run(
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
                first=first_look,
            )
            evaluation["open_set"] = {
                **open_world.report,
                "thresholds": open_world.thresholds.model_dump(mode="json"),
            }
            if first_look is not None:
                evaluation["open_set"]["first_look"] = first_look.report
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
                "members": cfg.members,
                "image_size": cfg.image_size,
                "pretrained": built.pretrained,
                "classes": len(labels),
                "test_images": len(test_items),
                "test_set_fingerprint": data_split.frozen.fingerprint(),
                "open_set_test_coverage": open_world.report.get("test_coverage"),
                "open_set_test_precision": open_world.report.get("test_precision"),
                # the share of test faces every member decided (1.0 for a net of one)
                "open_set_test_every_member": open_world.report.get("test_every_member"),
            }
            if register:
                _report_progress(on_progress, 0.92, "exporting to ONNX and checking parity")
                version = _export(
                    settings, engine, built, labels, cfg, evaluation, metrics, assembled, val_items, loader,
                    open_world, first_look,
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
                **(
                    {"member_histories": [h.as_dict() for h in trained.histories[1:]]}
                    if cfg.members > 1
                    else {}
                ),
                "dataset": resolved["dataset"],
                "augmentation": augment.describe(cfg.low_resolution),
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

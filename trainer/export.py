"""ONNX export into the model registry, with the parity check against torch.

The exported graph takes what `models.preprocess.to_batch` makes (uint8 RGB NHWC, any batch size),
does the float conversion and the ImageNet normalization itself, and returns `logits` and an
`embedding` (`trainer.backbones.features_and_embedding`: root-normalized, unit length). Parity
runs both sides on the same prepared batch: torch with the normalization written out here (as the
trainer's evaluation does it), onnxruntime on the raw bytes.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from catalog.fsutil import atomic_write_text, fsync_file
from models import preprocess
from models.card import (
    CARD_NAME,
    FIRST_INT8_NAME,
    FIRST_NAME,
    INT8_NAME,
    ONNX_NAME,
    FirstLook,
    Int8Graph,
    ModelCard,
    Thresholds,
    default_preprocessing,
    sha256_file,
)
from models.errors import RegistryError
from models.memory import MEMORY_NAME
from models.openset import OpenSetThresholds
from models.registry import Registry
from models.runtime import open_session, session_provider
from trainer.backbones import features_and_embedding
from trainer.first_look import FittedFirstLook
from trainer.quantize import int8_graph

log = logging.getLogger(__name__)
# The exporter's optimizer logs every rewrite at INFO; our own export line says what matters.
for _chatty in ("onnx_ir", "onnxscript"):
    logging.getLogger(_chatty).setLevel(logging.WARNING)

# The torch.export-based exporter (the only one kept in torch >= 2.9) writes opset 18 at least.
DEFAULT_OPSET = 18
PARITY_BATCH = 64
MAX_ABS_DIFF = 1e-3  # logits; float32 kernels differ between torch and onnxruntime by ~1e-5


class ExportError(RegistryError):
    """The export or its parity check failed; nothing was registered."""


class ExportWrapper(nn.Module):
    """uint8 NHWC -> float / 255 -> normalize(MEAN, STD) -> NCHW -> features -> (logits, embedding)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(preprocess.MEAN, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(preprocess.STD, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = image.permute(0, 3, 1, 2).to(torch.float32) / 255.0
        x = (x - self.mean) / self.std
        features, embedding = features_and_embedding(self.net, x)
        return self.net.head(features), embedding


def normalize_batch(batch: np.ndarray) -> torch.Tensor:
    """A prepared uint8 NHWC batch as the float NCHW, ImageNet-normalized tensor the net trains on."""
    x = torch.from_numpy(np.ascontiguousarray(batch)).permute(0, 3, 1, 2).to(torch.float32) / 255.0
    mean = torch.tensor(preprocess.MEAN, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(preprocess.STD, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - mean) / std


def export_onnx(net: nn.Module, *, out_path: Path, image_size: int, opset: int = DEFAULT_OPSET) -> None:
    """Write `net` wrapped in `ExportWrapper` to `out_path` (temp file, checked, then renamed)."""
    out_path = Path(out_path)
    # A CPU copy: the caller's net stays where it is, in the mode it was in.
    wrapper = ExportWrapper(copy.deepcopy(net)).to("cpu").eval()
    example = torch.zeros((2, image_size, image_size, 3), dtype=torch.uint8)
    fd, tmp_name = tempfile.mkstemp(dir=out_path.parent, prefix=f".{out_path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        with warnings.catch_warnings():
            # The exporter narrates its own internals; our own checks below are what count.
            warnings.simplefilter("ignore")
            torch.onnx.export(
                wrapper,
                (example,),
                str(tmp),
                input_names=[preprocess.INPUT_NAME],
                output_names=list(preprocess.OUTPUT_NAMES),
                opset_version=opset,
                dynamo=True,
                external_data=False,
                verbose=False,
                dynamic_shapes={"image": {0: torch.export.Dim("batch")}},
            )
        model = onnx.load(str(tmp))
        onnx.checker.check_model(model, full_check=True)
        batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
        if batch_dim.HasField("dim_value"):
            raise ExportError(f"exported graph has a fixed batch size {batch_dim.dim_value}")
        fsync_file(tmp)
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("exported %s (opset %d, %.1f MB)", out_path, opset, out_path.stat().st_size / 1e6)


@dataclass(frozen=True)
class ParityReport:
    max_abs_diff: float  # logits
    top1_agreement: float
    images: int
    provider: str
    embedding_max_abs_diff: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "embedding_max_abs_diff": self.embedding_max_abs_diff,
            "top1_agreement": self.top1_agreement,
            "images": self.images,
            "provider": self.provider,
        }


def check_parity(
    net: nn.Module,
    onnx_path: Path,
    images: list[np.ndarray],
    image_size: int,
    *,
    providers: list[str] | None = None,
) -> ParityReport:
    """onnxruntime vs torch on the same images, both through `models.preprocess.to_batch`."""
    if not images:
        raise ExportError("parity needs at least one validation image")
    session = open_session(Path(onnx_path), providers=providers)
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    diffs, emb_diffs, agree = [], [], 0
    try:
        with torch.inference_mode():
            for start in range(0, len(images), PARITY_BATCH):
                batch = preprocess.to_batch(images[start : start + PARITY_BATCH], image_size)
                features, ref = features_and_embedding(net, normalize_batch(batch).to(device))
                ref_logits = net.head(features).float().cpu().numpy()
                ref_embedding = ref.float().cpu().numpy()
                logits, embedding = session.run(list(preprocess.OUTPUT_NAMES), {preprocess.INPUT_NAME: batch})
                diffs.append(float(np.abs(logits - ref_logits).max()))
                emb_diffs.append(float(np.abs(embedding - ref_embedding).max()))
                agree += int((logits.argmax(1) == ref_logits.argmax(1)).sum())
    finally:
        net.train(was_training)
    return ParityReport(
        max_abs_diff=max(diffs),
        top1_agreement=agree / len(images),
        images=len(images),
        provider=session_provider(session),
        embedding_max_abs_diff=max(emb_diffs),
    )


def _graphs(
    net: nn.Module,
    onnx_path: Path,
    int8_path: Path,
    *,
    registry: Registry,
    image_size: int,
    opset: int,
    val_images: list[np.ndarray],
    calibration_images: list[np.ndarray] | None,
    int8: bool,
    int8_gate: bool,
    temperature: float,
) -> tuple[ParityReport, Int8Graph | None]:
    """One net's float graph, checked against torch (ExportError when it answers otherwise), and
    its int8 graph when asked for and it answers like the float one."""
    export_onnx(net, out_path=onnx_path, image_size=image_size, opset=opset)
    registry.checkpoint("export:onnx_written")
    parity = check_parity(net, onnx_path, val_images, image_size)
    log.info(
        "parity of %s on %d images (%s): max |logit diff| %.2e, top-1 agreement %.2f%%",
        onnx_path.name, parity.images, parity.provider, parity.max_abs_diff, 100 * parity.top1_agreement,
    )  # fmt: skip
    if parity.top1_agreement < 1.0 or parity.max_abs_diff > MAX_ABS_DIFF:
        raise ExportError(
            f"ONNX parity of {onnx_path.name} failed on {parity.images} validation images: top-1 "
            f"agreement {100 * parity.top1_agreement:.2f}% (must be 100%), max |logit diff| "
            f"{parity.max_abs_diff:.2e} (limit {MAX_ABS_DIFF:.0e})"
        )
    if not int8:
        return parity, None
    entry = int8_graph(
        onnx_path, int8_path, calibration=calibration_images or [], check=val_images,
        image_size=image_size, temperature=temperature, gate=int8_gate,
    )  # fmt: skip
    return parity, entry


def export_version(
    net: nn.Module,
    *,
    registry: Registry,
    labels: list[str],
    image_size: int,
    temperature: float,
    thresholds: Thresholds | float | dict[str, Any] | None,
    metrics: dict[str, Any],
    dataset_fingerprint: str | None,
    val_images: list[np.ndarray],
    backbone: str | None,
    extra: dict[str, Any] | None = None,
    opset: int = DEFAULT_OPSET,
    open_set: OpenSetThresholds | None = None,
    memory: bytes | None = None,
    int8: bool = False,
    calibration_images: list[np.ndarray] | None = None,
    int8_gate: bool = True,
    first_look: FittedFirstLook | None = None,
) -> tuple[str, ParityReport]:
    """Export, check parity on the validation images and register a candidate. Raises ExportError
    (and registers nothing) when top-1 agreement is below 100% or the logits drift too far.
    `memory`: the character memory file (`models.memory`), written beside the card. `int8`: also
    the int8 graph (`trainer.quantize`), its activation ranges from `calibration_images` (other
    validation faces; the parity images when None), when it answers like the float graph (always,
    with `int8_gate=False`). `first_look`: a version of several members also ships member 1's graph
    (parity and int8 alike) and its bars (`models.card.FirstLook`)."""
    version, staging = registry.new_version_dir()
    try:
        onnx_path = staging / ONNX_NAME
        parity, int8_entry = _graphs(
            net, onnx_path, staging / INT8_NAME, registry=registry, image_size=image_size, opset=opset,
            val_images=val_images, calibration_images=calibration_images, int8=int8,
            int8_gate=int8_gate, temperature=temperature,
        )  # fmt: skip
        first = None
        if first_look is not None:
            # member 1's own graph, checked and quantized as the version's is
            first_parity, first_int8 = _graphs(
                first_look.net, staging / FIRST_NAME, staging / FIRST_INT8_NAME, registry=registry,
                image_size=image_size, opset=opset, val_images=val_images,
                calibration_images=calibration_images, int8=int8, int8_gate=int8_gate,
                temperature=first_look.temperature,
            )  # fmt: skip
            first = FirstLook(
                members=len(getattr(net, "members", [])),
                sha256=sha256_file(staging / FIRST_NAME),
                int8=first_int8,
                temperature=first_look.temperature,
                open_set=first_look.open_set,
                columns=first_look.columns,
                margins=first_look.margins,
            )
            metrics = {**metrics, "first_look_parity": first_parity.as_dict()}
        with torch.inference_mode():
            probe = torch.zeros((1, 3, image_size, image_size), device=next(net.parameters()).device)
            embedding_dim = int(features_and_embedding(net, probe)[1].shape[1])
        card = ModelCard(
            version=version,
            labels=list(labels),
            image_size=image_size,
            embedding_dim=embedding_dim,
            preprocessing=default_preprocessing(),
            temperature=float(temperature),
            thresholds=Thresholds.coerce(thresholds),
            open_set=open_set,
            metrics={**metrics, "parity": parity.as_dict()},
            dataset_fingerprint=dataset_fingerprint,
            parent=registry.active_version(),
            created_at=datetime.now(UTC),
            backbone=backbone,
            onnx_sha256=sha256_file(onnx_path),
            int8=int8_entry,
            first_look=first,
            extra={"opset": opset, "torch": torch.__version__, **(extra or {})},
        )
        if memory is not None:
            (staging / MEMORY_NAME).write_bytes(memory)
            fsync_file(staging / MEMORY_NAME)
        atomic_write_text(staging / CARD_NAME, card.to_json())
        registry.checkpoint("export:card_written")
        registry.register(staging)
    except BaseException:
        registry.discard_staging(staging)
        raise
    return version, parity

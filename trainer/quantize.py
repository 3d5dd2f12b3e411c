"""The int8 graph: onnxruntime static quantization of the exported float graph, kept only when it
answers like the float graph on validation faces (`models.int8` says when readers run it).

QDQ format, int8 weights per output channel, uint8 activations with ranges calibrated on faces the
model was not trained on. uint8 weights avoid the u8 x s8 saturation of x86 CPUs without VNNI but
ran 4x slower than the float graph here (onnxruntime 1.31, 128 px); 7-bit weights (`reduce_range`)
cost fidelity (embedding cosine median 0.991, min 0.948, against 0.997 and 0.985). Readers check the
int8 graph on their own machine instead.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from models import preprocess
from models.card import Int8Graph, sha256_file
from models.int8 import agreement, probe_batch
from models.runtime import open_session

log = logging.getLogger(__name__)

# What the int8 graph must keep on validation faces to be shipped.
MIN_TOP1_AGREEMENT = 0.98
MIN_COSINE_MEDIAN = 0.99
CALIBRATION_BATCH = 16


class _Batches(CalibrationDataReader):
    """Prepared uint8 batches, as onnxruntime's calibration reads them."""

    def __init__(self, batch: np.ndarray) -> None:
        self._feeds = iter(
            {preprocess.INPUT_NAME: batch[i : i + CALIBRATION_BATCH]}
            for i in range(0, len(batch), CALIBRATION_BATCH)
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


class _WarningsOnly(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


@contextmanager
def _quiet_root_info() -> Iterator[None]:
    """onnxruntime's quantizer logs on the root logger at INFO, a line for every weight channel
    whose scale it widens so that the bias stays representable (79 lines for the 192 px model):
    noise in a training log that says nothing a reader can act on. Its warnings still pass; the
    filter sits on the root logger, so records of named loggers (ours) are not touched."""
    only_warnings = _WarningsOnly()
    root = logging.getLogger()
    root.addFilter(only_warnings)
    try:
        yield
    finally:
        root.removeFilter(only_warnings)


def quantize(float_path: Path, out_path: Path, calibration: np.ndarray) -> None:
    """Write the int8 graph of `float_path` to `out_path`, activation ranges from `calibration`
    (a prepared uint8 NHWC batch)."""
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp, _quiet_root_info():
        prepared = Path(tmp) / "prepared.onnx"
        # Symbolic shape inference fails on the exported graph's Expand; ONNX's own is enough here.
        quant_pre_process(str(float_path), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared),
            str(out_path),
            _Batches(calibration),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
        )


def int8_graph(
    float_path: Path,
    out_path: Path,
    *,
    calibration: list[np.ndarray],
    check: list[np.ndarray],
    image_size: int,
    temperature: float = 1.0,
    gate: bool = True,
) -> Int8Graph | None:
    """Quantize, then compare with the float graph on `check` (faces apart from `calibration` where
    there are enough). Returns the card's entry, or None (and no file) when it answers too
    differently: the version then has the float graph only. `gate=False` keeps it whatever it
    answers (benchmarks of untrained weights, where only the time means something)."""
    quantize(float_path, out_path, preprocess.to_batch(calibration or check, image_size))
    float_session = open_session(float_path, providers=["CPUExecutionProvider"])
    int8_session = open_session(out_path, providers=["CPUExecutionProvider"])
    found = agreement(float_session, int8_session, preprocess.to_batch(check, image_size), temperature)
    if gate and (found.top1_agreement < MIN_TOP1_AGREEMENT or found.cosine_median < MIN_COSINE_MEDIAN):
        log.warning(
            "the int8 graph answers unlike the float graph on %d validation faces (top-1 agreement "
            "%.3f on the %d the float graph is sure of, needs %.2f; embedding cosine median %.4f, "
            "needs %.2f): shipping the float graph only",
            found.images, found.top1_agreement, found.sure_images, MIN_TOP1_AGREEMENT,
            found.cosine_median, MIN_COSINE_MEDIAN,
        )  # fmt: skip
        out_path.unlink(missing_ok=True)
        return None
    log.info(
        "int8 graph: top-1 agreement %.3f on the %d of %d validation faces the float graph is sure of, "
        "embedding cosine median %.4f (min %.4f)",
        found.top1_agreement, found.sure_images, found.images, found.cosine_median, found.cosine_min,
    )  # fmt: skip
    return Int8Graph(
        **found.model_dump(),
        sha256=sha256_file(out_path),
        probe_cosine_min=agreement(float_session, int8_session, probe_batch(image_size)).cosine_min,
    )

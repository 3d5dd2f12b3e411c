"""onnxruntime sessions: providers chosen explicitly, and the graph checked against its card."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from models import colour, preprocess
from models.card import ModelCard
from models.errors import ModelLoadError

log = logging.getLogger(__name__)

PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


def choose_providers(requested: list[str] | None = None) -> list[str]:
    """CUDA when this onnxruntime build has it, then CPU; or the caller's list, checked."""
    available = ort.get_available_providers()
    if requested is None:
        return [p for p in PREFERRED_PROVIDERS if p in available]
    missing = [p for p in requested if p not in available]
    if missing:
        raise ModelLoadError(f"onnxruntime providers {missing} are not available here (have {available})")
    return list(requested)


def open_session(
    onnx_path: Path,
    *,
    providers: list[str] | None = None,
    intra_op_threads: int | None = None,
) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if intra_op_threads is not None:
        options.intra_op_num_threads = intra_op_threads
    chosen = choose_providers(providers)
    try:
        return ort.InferenceSession(str(onnx_path), sess_options=options, providers=chosen)
    except Exception as exc:  # onnxruntime raises its own untyped errors for any bad file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelLoadError(f"{onnx_path} does not load in onnxruntime: {first_line}") from exc


def check_signature(
    session: ort.InferenceSession, card: ModelCard, where: Path, *, first: bool = False
) -> int:
    """The graph must take what `models.preprocess` produces and give what the card promises
    (`first`: member 1's graph, whose embedding width its first look's columns give). Returns the
    embedding width."""
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != preprocess.INPUT_NAME:
        names = [i.name for i in inputs]
        raise ModelLoadError(f"{where}: graph inputs are {names}, expected ['{preprocess.INPUT_NAME}']")
    shape = inputs[0].shape
    if inputs[0].type != "tensor(uint8)" or len(shape) != 4:
        raise ModelLoadError(f"{where}: input is {inputs[0].type} {shape}, expected uint8 NHWC")
    size = card.image_size
    if isinstance(shape[0], int) or shape[1:] != [size, size, 3]:
        raise ModelLoadError(
            f"{where}: input shape {shape} does not match the card's [batch, {size}, {size}, 3] "
            "with a dynamic batch axis"
        )
    outputs = {o.name: o for o in session.get_outputs()}
    if set(outputs) != set(preprocess.OUTPUT_NAMES):
        raise ModelLoadError(
            f"{where}: outputs are {sorted(outputs)}, expected {list(preprocess.OUTPUT_NAMES)}"
        )
    classes = outputs["logits"].shape[-1]
    if isinstance(classes, int) and classes != len(card.labels):
        raise ModelLoadError(
            f"{where}: the graph has {classes} classes but the card lists {len(card.labels)} labels"
        )
    width = outputs["embedding"].shape[-1]
    if first:
        # member 1's graph: the width its card's columns read, without the colours added beside it
        look = card.first_look
        assert look is not None, "first=True needs a card with a first look"
        expected: int | None = look.width - (colour.BINS if look.open_set.colour > 0.0 else 0)
        what = "member 1's embedding width"
    else:
        expected, what = card.embedding_dim, "embedding width"
    if expected is not None and isinstance(width, int) and width != expected:
        raise ModelLoadError(f"{where}: {what} {width} differs from the card's {expected}")
    return width if isinstance(width, int) else (expected or 0)


def session_provider(session: ort.InferenceSession) -> str:
    return session.get_providers()[0]

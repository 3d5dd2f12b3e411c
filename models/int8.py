"""The int8 graph beside the float one, and when a reader runs it.

The exporter quantizes the float graph (`trainer.quantize`: onnxruntime static quantization, QDQ,
int8 weights per channel, uint8 activations) and keeps it only when it answers like the float graph
on validation faces. On a CPU it costs 0.6-0.75x the float graph's time for the same answers (128
px, one thread: 3 faces 14.4 -> 10.7 ms, a batch of 16 65.0 -> 39.5 ms; `bench.openset` figures on
the dev set within half a point; `bench/inference.py` times both in one run).

Two things can make it answer differently elsewhere: x86 CPUs without VNNI add u8 x s8 products in
16-bit sums that can saturate, and GPU providers do not run QDQ graphs as int8 at all. So a reader
takes it on the CPU provider only, and only after both graphs agree here on a fixed probe batch as
closely as they did where the graph was made (the card keeps that figure); otherwise it logs why
and runs the float graph.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np

from models import preprocess
from models.card import FIRST_INT8_NAME, FIRST_NAME, INT8_NAME, ONNX_NAME, GraphAgreement, ModelCard
from models.openset import softmax
from models.runtime import choose_providers, open_session

log = logging.getLogger(__name__)

Graph = Literal["int8", "float"]

# How much less closely than where it was made the int8 graph may agree with the float one on the
# probe, on a reader's machine (the same kernels give the same figure; a trained model's is ~0.996).
PROBE_TOLERANCE = 0.01
PROBE_IMAGES = 8


# A face counts for top-1 agreement when the float graph is this sure of it (calibrated): where
# two characters tie, a rounding may swap them, and the answer is "not sure" either way (dev set,
# 400 held-out faces, 128 and 160 px: one swap each, both at top probability 0.47-0.49).
SURE = 0.5


def agreement(reference: Any, candidate: Any, batch: np.ndarray, temperature: float = 1.0) -> GraphAgreement:
    """How closely `candidate` (an onnxruntime session) answers like `reference` on a prepared batch."""
    names = list(preprocess.OUTPUT_NAMES)
    ref_logits, ref_embedding = reference.run(names, {preprocess.INPUT_NAME: batch})
    logits, embedding = candidate.run(names, {preprocess.INPUT_NAME: batch})
    cosine = np.sum(_unit(ref_embedding) * _unit(embedding), axis=1)
    sure = softmax(ref_logits, 1.0 / temperature).max(axis=1) >= SURE
    same = ref_logits.argmax(1) == logits.argmax(1)
    return GraphAgreement(
        images=len(batch),
        sure_images=int(sure.sum()),
        top1_agreement=float(same[sure].mean()) if sure.any() else 1.0,
        cosine_median=float(np.median(cosine)),
        cosine_min=float(cosine.min()),
    )


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def probe_batch(size: int, count: int = PROBE_IMAGES, seed: int = 0) -> np.ndarray:
    """Drawing-like pictures (two-colour gradients, flat discs, a little grain), the same on every
    machine: activations in the range real faces give, unlike pure noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    pictures = []
    for i in range(count):
        start, end = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        t = (xx * np.cos(i) + yy * np.sin(i))[..., None]
        picture = start * (1 - t) + end * t
        for _ in range(6):
            cx, cy = rng.uniform(0.1, 0.9, 2)
            radius = rng.uniform(0.05, 0.3)
            disc = (((xx - cx) ** 2 + (yy - cy) ** 2) < radius * radius)[..., None]
            picture = np.where(disc, rng.integers(0, 256, 3), picture)
        pictures.append(np.clip(picture + rng.normal(0, 8, picture.shape), 0, 255).astype(np.uint8))
    return np.stack(pictures)


def open_graph(
    folder: Path,
    card: ModelCard,
    *,
    providers: list[str] | None = None,
    intra_op_threads: int | None = None,
    int8: bool = True,
    first: bool = False,
) -> tuple[Any, Graph]:
    """The session a reader answers with, and which graph it is ("int8" or "float"); `first`: of
    member 1's graph (`ModelCard.first_look`) instead of the version's."""
    if first:
        assert card.first_look is not None
        names, entry = (FIRST_NAME, FIRST_INT8_NAME), card.first_look.int8
    else:
        names, entry = (ONNX_NAME, INT8_NAME), card.int8
    float_session = open_session(folder / names[0], providers=providers, intra_op_threads=intra_op_threads)
    if not int8 or entry is None:
        return float_session, "float"
    if choose_providers(providers)[0] != "CPUExecutionProvider":
        log.info("%s: the int8 graph is for CPUs; running the float graph on %s", card.version, providers)
        return float_session, "float"
    int8_session = open_session(
        folder / names[1], providers=["CPUExecutionProvider"], intra_op_threads=intra_op_threads
    )
    probe = agreement(float_session, int8_session, probe_batch(card.image_size))
    needed = entry.probe_cosine_min - PROBE_TOLERANCE
    if probe.cosine_min < needed:
        log.warning(
            "%s: the int8 graph %s answers unlike the float graph on this machine (probe embedding "
            "cosine %.3f, %.3f where it was made; x86 CPUs without VNNI can saturate); running the "
            "float graph",
            card.version, names[1], probe.cosine_min, entry.probe_cosine_min,
        )  # fmt: skip
        return float_session, "float"
    return int8_session, "int8"

"""The open-set part of a training run: the trained net embeds the run's faces (training,
validation, test; the validation and test faces also in their mirror images, the second look), the
thresholds are fitted on them (`trainer.openset.fit`), the version's character memory is built, and
the open-set answer is scored on the test faces as the answer path decides.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from sklearn.metrics import f1_score

from models.colour import with_colour
from models.memory import CharacterMemory, MemoryEntry
from models.open_world import OpenWorld
from models.openset import Kind, Looks, OpenSetThresholds, both_looks, softmax
from models.preprocess import mirrored
from trainer.backbones import middle_columns
from trainer.evaluate import predict_embeddings, predict_outputs
from trainer.openeval_answers import Answered, decide_all, every_member_share
from trainer.openset import fit

if TYPE_CHECKING:
    from catalog.settings_sections import MemorySettings
    from trainer.dataset import Item
    from trainer.first_look import FittedFirstLook


def synthetic_negatives(size: int, count: int = 96, seed: int = 0) -> list[np.ndarray]:
    """Pictures with no character in them: uniform and blurred noise, flat colours, gradients and
    stripes, RGB uint8 of `size` x `size`."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for i in range(count):
        kind = i % 5
        if kind == 0:
            img = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        elif kind == 1:
            coarse = rng.integers(0, 256, (max(2, size // 8), max(2, size // 8), 3)).astype(np.uint8)
            img = np.kron(coarse, np.ones((8, 8, 1), dtype=np.uint8))[:size, :size]
            img = np.pad(img, ((0, size - img.shape[0]), (0, size - img.shape[1]), (0, 0)), mode="edge")
        elif kind == 2:
            img = np.broadcast_to(rng.integers(0, 256, 3, dtype=np.uint8), (size, size, 3)).copy()
        elif kind == 3:
            t = np.linspace(0.0, 1.0, size)[:, None, None]
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            img = np.repeat((a * (1 - t) + b * t).astype(np.uint8), size, axis=1)
        else:
            period = int(rng.integers(4, max(5, size // 4)))
            band = (np.arange(size) // period) % 2
            a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
            img = np.where(band[None, :, None] == 0, a, b).astype(np.uint8).repeat(size, axis=0)
        out.append(np.ascontiguousarray(img, dtype=np.uint8))
    return out


@dataclass
class RunOpenSet:
    """What a training run adds for the open world: the thresholds, the memory file, a report."""

    thresholds: OpenSetThresholds
    memory: bytes
    report: dict[str, Any]


def for_run(
    net: torch.nn.Module,
    *,
    labels: list[str],
    train_items: list[Item],
    val_items: list[Item],
    test_items: list[Item],
    loader: Callable[[Item], np.ndarray],
    device: torch.device,
    image_size: int,
    settings: MemorySettings,
    seed: int,
    temperature: float = 1.0,
    batch_size: int = 128,
    first: FittedFirstLook | None = None,
) -> RunOpenSet:
    """Embed the run's faces with the trained net, fit the thresholds (memory: training faces;
    held out: validation faces), build the version's memory (training and validation faces, at
    most `max_per_character` each) and score the open-set answer on the test faces (`first`: a
    net of several members answers with member 1 looking first, as its version will)."""
    index = {label: i for i, label in enumerate(labels)}

    def embed(pictures: list[np.ndarray]) -> np.ndarray:
        """The memory's vectors (`models.colour`), as `models.classifier.Classifier.infer` makes them."""
        found = predict_embeddings(net, pictures, device=device, batch_size=batch_size)
        return with_colour(found, pictures, settings.colour)

    def looks(
        items: list[Item],
        load: Callable[[Item], np.ndarray] = loader,
        model: torch.nn.Module = net,
        scale: float = temperature,
    ) -> Looks:
        """What `models.classifier.Classifier.infer` returns for these faces."""
        pictures = [load(i) for i in items]
        logits, found = predict_outputs(model, pictures, device=device, batch_size=batch_size)
        vectors = with_colour(found, pictures, settings.colour)
        return Looks(softmax(logits, 1.0 / scale), vectors, logits.max(1) if len(logits) else np.zeros(0))

    def mirror_load(item: Item) -> np.ndarray:
        return mirrored([loader(item)])[0]

    def held_out(items: list[Item], first: Looks) -> Looks:
        """Held-out faces as a decision sees them: with the mirror, both looks averaged (the bars
        are fitted on what a second look decides on)."""
        return both_looks(first, looks(items, mirror_load)) if settings.mirror else first

    train_emb = embed([loader(i) for i in train_items])
    val_first = looks(val_items)  # one look: the memory keeps these vectors
    train_y = np.array([index[i.label] for i in train_items])
    val_y = np.array([index[i.label] for i in val_items])
    val_held = held_out(val_items, val_first)
    plain = synthetic_negatives(image_size, seed=seed)
    negatives = embed(plain)
    if settings.mirror:
        nothing = np.zeros((len(plain), 0))  # the head plays no part in their bar
        negatives = both_looks(
            Looks(nothing, negatives, np.zeros(len(plain))),
            Looks(nothing, embed(mirrored(plain)), np.zeros(len(plain))),
        ).vectors

    fitted = fit(
        train_emb, train_y, val_held.vectors, val_y, len(labels), held_head=val_held.probabilities,
        negatives=negatives, target_precision=settings.target_precision,
        max_strangers=settings.max_strangers, max_unanswered=settings.max_unanswered,
        min_examples=settings.min_examples, colour=settings.colour, gate=middle_columns(net),
        first_looks=(val_first.vectors, val_first.probabilities, val_first.familiarity) if settings.mirror else None,
        held_familiarity=val_held.familiarity, familiarity=settings.familiarity, seed=seed,
    )  # fmt: skip
    memory = CharacterMemory(train_emb.shape[1])
    rng = np.random.default_rng(seed)
    items = train_items + val_items
    vectors = np.concatenate([train_emb, val_first.vectors])
    for label in labels:
        rows = [i for i, item in enumerate(items) if item.label == label]
        if len(rows) > settings.max_per_character:
            rows = sorted(rng.choice(rows, settings.max_per_character, replace=False).tolist())
        memory.add(MemoryEntry(items[i].key, label, items[i].origin, vectors[i]) for i in rows)
    report = dict(fitted.report)
    if test_items:
        test_y = np.array([index[i.label] for i in test_items])
        test_first = looks(test_items)
        test_both = held_out(test_items, test_first) if settings.mirror else None
        member = None if first is None else looks(test_items, model=first.net, scale=first.temperature)
        # as the answer path decides: the first look, both looks near a bar, member 1 first
        world = OpenWorld(labels, fitted.thresholds, memory, first=first)
        decisions = decide_all(world, Answered(test_first, test_both, member))
        kinds = np.array([d.kind.value for d in decisions])
        best = np.array([index[d.candidates[0].label] for d in decisions])
        named = kinds == Kind.NAME.value
        report.update(
            {
                "test_coverage": float(named.mean()),
                "test_precision": float((best[named] == test_y[named]).mean()) if named.any() else 0.0,
                "test_macro_f1_answered": float(
                    f1_score(
                        test_y,
                        np.where(named, best, -1),
                        labels=list(range(len(labels))),
                        average="macro",
                        zero_division=0,
                    )
                ),
                "test_kinds": {kind.value: float((kinds == kind.value).mean()) for kind in Kind},
                "test_second_looks": float(np.mean([d.looks == 2 for d in decisions])),
                "test_every_member": every_member_share(world, decisions),
            }
        )
    return RunOpenSet(fitted.thresholds, memory.to_bytes(), report)

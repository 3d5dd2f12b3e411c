"""Member 1 of a run of several members as the version's first look (`models.card.FirstLook`): its
own temperature and open-set bars, fitted as a run of one would fit them, and where its vector sits
in the memory's.

Why: three members name fewer strangers than one (dev set, default seed: 9.3% against 10.3%), but
cost three members' time on every face. Simulated with the product's parts on the dev models, member
1 deciding every face and handing the ones near its bars (the cosine margin 1.5x its own second
look's) to all three named as few strangers (9.3%) with the three run on 6-9% of known faces
(docs/open-world.md, "Ensembles as an option").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from models import colour, open_world
from models.openset import OpenSetThresholds
from trainer import calibration, openset_run
from trainer.ensemble import Ensemble
from trainer.evaluate import predict_logits

if TYPE_CHECKING:
    from catalog.settings_sections import MemorySettings
    from trainer.dataset import Item

# A face whose first look lands within this many times member 1's own second-look cosine margin of
# a bar goes to every member (1.5 and 2 named as few strangers in the simulation; 1.5 hands over
# fewer faces: 6.2% of known faces against 9.0%).
MARGIN_SCALE = 1.5
# Member 1's margins when its bars were fitted without the mirror (no second look to scale): the
# dev models' fitted ones were 0.020-0.026 (cosine) and 0.3 (confidence).
FALLBACK_MARGINS = (0.035, 0.3)


@dataclass
class FittedFirstLook:
    net: torch.nn.Module  # member 1
    members: int  # of the version it looks first for
    temperature: float
    open_set: OpenSetThresholds
    columns: list[tuple[int, int, float]]
    margins: tuple[float, float]
    report: dict[str, Any]


def member_columns(ensemble: Ensemble, weight: float) -> list[tuple[int, int, float]]:
    """Where member 1's vector sits in the memory's vector of `ensemble` (colour `weight`)."""
    own = ensemble.members[0].middle_columns()
    return open_world.member_columns(
        len(ensemble.members),
        ensemble.embedding_dim,
        0 if own is None else own[1] - own[0],
        colour.BINS if weight > 0.0 else 0,
    )


def fit_first_look(
    ensemble: Ensemble,
    *,
    labels: list[str],
    train_items: list[Item],
    val_items: list[Item],
    loader: Callable[[Item], np.ndarray],
    device: torch.device,
    image_size: int,
    settings: MemorySettings,
    seed: int,
    batch_size: int = 128,
) -> FittedFirstLook:
    """Member 1's temperature and open-set bars, fitted on the run's faces as for a run of one."""
    member = ensemble.members[0]
    index = {label: i for i, label in enumerate(labels)}
    y_val = np.array([index[i.label] for i in val_items], dtype=np.int64)
    logits = predict_logits(member, val_items, loader, device=device, batch_size=batch_size)
    temperature, _ = calibration.shipped_temperature(logits, y_val)
    fitted = openset_run.for_run(
        member, labels=labels, train_items=train_items, val_items=val_items, test_items=[],
        loader=loader, device=device, image_size=image_size, settings=settings, seed=seed,
        temperature=temperature, batch_size=batch_size,
    )  # fmt: skip
    own = fitted.thresholds.second_look
    margins = FALLBACK_MARGINS if own is None else (own[0] * MARGIN_SCALE, own[1])
    return FittedFirstLook(
        net=member,
        members=len(ensemble.members),
        temperature=temperature,
        open_set=fitted.thresholds,
        columns=member_columns(ensemble, fitted.thresholds.colour),
        margins=margins,
        report={"temperature": temperature, "margins": list(margins), **fitted.report},
    )

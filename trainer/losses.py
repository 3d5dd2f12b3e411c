"""The training objectives: class-balanced cross-entropy over a linear head, or a margin loss over a
cosine head (CosFace, ArcFace).

A cosine head scores a face by `scale * cos(embedding, w_c)` with unit-length class weights and no
bias, so its logits live in the very space the character memory searches: a trained class is a
learned prototype, and a character added later from a few examples competes on the same scale.
The margin is applied only while training, on the true class's logit (CosFace: `cos - m`; ArcFace:
`cos(theta + m)`); the exported graph computes the plain `scale * cos`, which temperature scaling
then calibrates like any logits. Measured against cross-entropy on the dev protocol: see
`bench/openset.py` and docs/open-world.md.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

Loss = Literal["cross_entropy", "cosface", "arcface"]
LOSSES: tuple[str, ...] = ("cross_entropy", "cosface", "arcface")
DEFAULT_SCALE = 30.0


class CosineHead(nn.Module):
    """`scale * cos(x, w_c)` for every class c: unit-length weights, no bias."""

    def __init__(self, dim: int, num_classes: int, scale: float = DEFAULT_SCALE) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_classes, dim))
        nn.init.normal_(self.weight, std=0.01)
        self.scale = scale
        self.in_features = dim
        self.out_features = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * (F.normalize(x, dim=1) @ F.normalize(self.weight, dim=1).T)


class MarginCrossEntropy(nn.Module):
    """Cross-entropy over cosine logits with an additive (CosFace) or angular (ArcFace) margin on
    the true class. Takes the head's `scale * cos` logits, so the network itself stays unchanged."""

    def __init__(
        self,
        kind: Literal["cosface", "arcface"],
        *,
        margin: float,
        scale: float = DEFAULT_SCALE,
        weight: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.margin = margin
        self.scale = scale
        self.register_buffer("weight", weight if weight is not None else None)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        cos = (logits / self.scale).clamp(-1.0, 1.0)
        true = cos.gather(1, targets[:, None])
        if self.kind == "cosface":
            adjusted = true - self.margin
        else:
            theta = torch.acos(true.clamp(-1.0 + 1e-6, 1.0 - 1e-6))
            # Past pi - m, cos(theta + m) would rise again; fall back to CosFace's linear penalty.
            adjusted = torch.where(
                theta < math.pi - self.margin,
                torch.cos(theta + self.margin),
                true - self.margin * math.sin(self.margin),
            )
        cos = cos.scatter(1, targets[:, None], adjusted)
        return F.cross_entropy(self.scale * cos, targets, weight=self.weight)


def make_head(loss: str, dim: int, num_classes: int, scale: float = DEFAULT_SCALE) -> nn.Module:
    if loss == "cross_entropy":
        return nn.Linear(dim, num_classes)
    if loss in ("cosface", "arcface"):
        return CosineHead(dim, num_classes, scale)
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def make_criterion(
    loss: str, *, weight: torch.Tensor, label_smoothing: float, margin: float, scale: float = DEFAULT_SCALE
) -> nn.Module:
    if loss == "cross_entropy":
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)
    if loss in ("cosface", "arcface"):
        return MarginCrossEntropy(loss, margin=margin, scale=scale, weight=weight)  # type: ignore[arg-type]
    raise ValueError(f"unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")

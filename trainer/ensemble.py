"""Several training runs of one recipe as one net (`NAMAE_TRAIN__MEMBERS`): one exported graph whose
logits are the members' mean and whose memory vector makes a cosine the members' mean cosine.

Why: runs of the same recipe on the same split differ in *which* characters they never saw they
take for a trained one (docs/open-world.md, "Ensembles of training runs": on the dev set kronii is
named as ina in 12.5% to 37.2% of her pictures depending on the run), so their answers averaged name fewer
strangers than one run does. Measured through the product's answer path on one split (seeds 42,
43, 44): strangers named 13.95% on average alone, 11.8% as a pair, 11.3% as three; a new character
from 20 faces 0.897 alone, 0.917 and 0.923. Averaging the weights instead ("model soups") measured
no better than one run, so the members stay separate nets and the graph costs N times the model.

The vector's columns: every member's last-feature part first, then every member's middle part,
over sqrt(N). Each member's vector is unit length, so the ensemble's is too, a cosine between two
ensemble vectors is the mean of the members' cosines, and the middle parts stay one span, the
card's gate (`middle_columns`), as they are for one net.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from trainer.backbones import Classifier


class MeanHead(nn.Module):
    """The members' pooled features side by side -> the mean of the members' heads' logits."""

    def __init__(self, heads: list[nn.Module], widths: list[int]) -> None:
        super().__init__()
        self.heads = nn.ModuleList(heads)
        self.widths = list(widths)

    @property
    def out_features(self) -> int:
        return int(self.heads[0].out_features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        parts = torch.split(features, self.widths, dim=1)
        return torch.stack([head(part) for head, part in zip(self.heads, parts, strict=True)]).mean(0)


class Ensemble(nn.Module):
    """Trained `Classifier`s of one backbone, labels and input size, answering as one net."""

    def __init__(self, members: list[Classifier]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        if len({m.middle for m in members}) != 1 or len({m.embedding_dim for m in members}) != 1:
            raise ValueError("an ensemble's members must share their features' widths and middle weight")
        self.members = nn.ModuleList(members)
        self.embedding_dim = members[0].embedding_dim
        self.middle = members[0].middle
        self.head = MeanHead([m.head for m in members], [m.embedding_dim for m in members])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([member(x) for member in self.members]).mean(0)

    def features_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled, vectors = zip(*(m.features_and_embedding(x) for m in self.members), strict=True)
        lasts = [v[:, : self.embedding_dim] for v in vectors]
        middles = [v[:, self.embedding_dim :] for v in vectors]
        embedding = torch.cat(lasts + middles, dim=1) / math.sqrt(len(self.members))
        return torch.cat(pooled, dim=1), embedding

    def middle_columns(self) -> tuple[int, int] | None:
        own = self.members[0].middle_columns()
        if own is None:
            return None
        count = len(self.members)
        return count * own[0], count * own[1]

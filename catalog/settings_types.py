"""The annotated types and value checks the settings sections share: URLs kept as given but checked,
fractions, positive numbers, counts, the trainer's backbones, and shard id lists.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

# The backbones the trainer can build (trainer.backbones builds exactly these).
Backbone = Literal[
    "efficientnet_lite0",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "resnet18",
    "resnet50",
    "convnext_tiny",
]


def web_url(*schemes: str):
    """A URL with one of `schemes` and a host, kept as the string it was given."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port outside 0-65535 or not a number
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {' or '.join(f'{s}://' for s in schemes)} URL with a host")
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, web_url("http", "https")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=1)]


def parse_shard_ids(text: str) -> list[int]:
    """Shard ids written as "0,1", "4-7", "0,2-3" or "[0, 1]"."""
    ids: list[int] = []
    for part in text.strip().strip("[]").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"shard ids look like 0,1 or 4-7, not {text!r}") from None
        if last < first:
            raise ValueError(f"shard id range {part!r} runs backwards")
        ids.extend(range(first, last + 1))
    return ids

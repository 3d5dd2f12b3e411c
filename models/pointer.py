"""The registry's pointer: one small JSON object (`ACTIVE`) that says which versions are registered,
which one is active and what to roll back to, changed only by compare-and-swap.

Every change is read -> edit a copy -> `put_if(expected=<the tag read>)`; when another writer got
there first the write is refused, and the edit runs again on what that writer left. The edit is a
function of the state it is given, so a retry re-decides (a promotion gate compares with whichever
version is active by then).
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

from catalog.objects import ObjectStore
from models.card import VERSION_RE
from models.errors import RegistryError

log = logging.getLogger(__name__)

POINTER_KEY = "ACTIVE"
SWAP_ATTEMPTS = 200
T = TypeVar("T")


def version_number(version: str) -> int:
    match = VERSION_RE.match(version)
    if not match:
        raise RegistryError(f"{version!r} is not a version id (expected like v0001-20261121T0700)")
    return int(match["number"])


@dataclass
class RegistryState:
    """`registered` is None in a pointer written before it listed versions (then the folders say);
    `history` is the stack of previously active versions (rollback pops)."""

    active: str | None = None
    registered: list[str] | None = None
    history: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    promoted_at: dict[str, str] = field(default_factory=dict)
    updated_at: str | None = None

    @classmethod
    def parse(cls, data: bytes, where: str) -> RegistryState:
        try:
            raw = json.loads(data)
            registered = raw.get("registered")
            return cls(
                active=raw.get("active"),
                registered=None if registered is None else sorted(set(registered), key=version_number),
                history=list(raw.get("history", [])),
                retired=list(raw.get("retired", [])),
                refused=dict(raw.get("refused", {})),
                promoted_at=dict(raw.get("promoted_at", {})),
                updated_at=raw.get("updated_at"),
            )
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise RegistryError(f"{where} is not a registry pointer file: {exc}") from exc

    def dump(self) -> bytes:
        # The time makes every write's bytes (and so its ETag) new: a writer holding the tag of an
        # older state with the same content can never swap over a newer one.
        self.updated_at = datetime.now(UTC).isoformat()
        return (json.dumps(self.__dict__, indent=2) + "\n").encode("utf-8")

    def forget(self, versions: set[str]) -> None:
        self.registered = [v for v in self.registered or [] if v not in versions]
        self.history = [v for v in self.history if v not in versions]
        self.retired = [v for v in self.retired if v not in versions]
        self.refused = {k: v for k, v in self.refused.items() if k not in versions}
        self.promoted_at = {k: v for k, v in self.promoted_at.items() if k not in versions}


class Pointer:
    def __init__(self, objects: ObjectStore, list_versions: Callable[[], list[str]]) -> None:
        """`list_versions` names the version folders present, for a pointer that predates
        `registered` (or none at all: a registry of folders copied in by hand)."""
        self.objects = objects
        self.list_versions = list_versions

    @property
    def where(self) -> str:
        return f"{self.objects.location}/{POINTER_KEY}"

    def read(self) -> RegistryState:
        return self._read()[0]

    def _read(self) -> tuple[RegistryState, str | None]:
        current = self.objects.get_versioned(POINTER_KEY)
        state = RegistryState() if current is None else RegistryState.parse(current.data, self.where)
        if state.registered is None:
            state.registered = sorted(self.list_versions(), key=version_number)
        return state, current.tag if current is not None else None

    def stamp(self) -> str | None:
        return self.objects.stamp(POINTER_KEY)

    def update(
        self,
        edit: Callable[[RegistryState], tuple[bool, T]],
        *,
        before_switch: Callable[[], None] | None = None,
    ) -> T:
        """Apply `edit` (which returns whether it changed the state, and a result) until the swap
        lands; returns the result of the edit that landed."""
        delay = 0.005
        for _ in range(SWAP_ATTEMPTS):
            state, tag = self._read()
            changed, result = edit(state)
            if not changed:
                return result
            if before_switch is not None:
                before_switch()
            if self.objects.put_if(POINTER_KEY, state.dump(), expected=tag):
                return result
            # Another writer switched first: back off a random while (writers contend rarely; a
            # jitter keeps two of them from colliding again in step) and redo the edit on theirs.
            time.sleep(random.uniform(0, delay))
            delay = min(delay * 2, 0.5)
        raise RegistryError(
            f"{self.where} kept changing under {SWAP_ATTEMPTS} attempts to update it; is another "
            "writer looping?"
        )

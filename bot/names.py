"""Model labels as catalog characters: label -> (character id, display name), cached until the
characters change (`forget`) or for at most `NAMES_TTL_S`. Shared by the reply (names shown), corrections (the character a
"Right" vote is for) and moderation (which forgets after adding or removing a character)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sqlalchemy import Engine

from catalog.characters import resolve_labels

InThread = Callable[..., Awaitable[Any]]
# Characters are catalog-wide: a moderator's change in a guild of another shard (another process)
# reaches this process's label names when they are read again, at most this long after.
NAMES_TTL_S = 30.0


class LabelNames:
    def __init__(self, engine: Engine, in_thread: InThread) -> None:
        self.engine = engine
        self._in_thread = in_thread
        self._known: dict[str, tuple[int, str] | None] = {}
        self._read_at = time.monotonic()

    def forget(self) -> None:
        """Characters changed: resolve labels afresh."""
        self._known.clear()
        self._read_at = time.monotonic()

    async def resolve(self, labels: Iterable[str]) -> dict[str, tuple[int, str] | None]:
        if time.monotonic() - self._read_at > NAMES_TTL_S:
            self.forget()
        wanted = list(dict.fromkeys(labels))
        missing = [label for label in wanted if label not in self._known]
        if missing:
            self._known.update(await self._in_thread(resolve_labels, self.engine, missing))
        return {label: self._known.get(label) for label in wanted}

    async def display(self, labels: Iterable[str]) -> dict[str, str]:
        """Label -> the character's name, for labels the catalog knows (others are shown as is)."""
        return {label: known[1] for label, known in (await self.resolve(labels)).items() if known}

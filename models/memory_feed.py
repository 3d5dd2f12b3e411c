"""Faces that landed in the catalog, applied to a running answerer's memory.

The bot (and anything else that answers) loads a version's trained memory with the model, then
calls `MemoryFeed.poll()` every few seconds: the version's catalog rows past the last id it saw
are added (or, for tombstones, removed) and the open-set snapshot is refreshed. The catalog is the
only thing shared, so the answerer and the worker that wrote the rows may run on different hosts.

A row names a catalog character; when a model label resolves to the same character (a label is
its name or slug), the face is filed under the label, so a trained character and its new faces
stay one character.
"""

from __future__ import annotations

import logging

from sqlalchemy import Engine

from catalog.characters import resolve_labels
from catalog.memory import POLL_BATCH, rows_since
from models.memory import MemoryEntry, decode_embedding
from models.open_world import OpenWorld

log = logging.getLogger(__name__)


class MemoryFeed:
    def __init__(self, engine: Engine, world: OpenWorld, version: str) -> None:
        self.engine = engine
        self.world = world
        self.version = version
        self.last_id = 0
        self._label_of: dict[int, str] = {}
        for label, resolved in resolve_labels(engine, world.labels).items():
            if resolved is not None:
                self._label_of[resolved[0]] = label

    def poll(self) -> int:
        """Apply every row that landed since the last poll; returns how many changed the memory."""
        changed = 0
        while True:
            rows = rows_since(self.engine, self.version, self.last_id)
            if not rows:
                break
            entries = []
            for row in rows:
                name = self._label_of.get(row.character_id or -1, row.character or "")
                vector = decode_embedding(row.embedding) if row.embedding is not None else None
                if vector is not None and vector.shape[0] != self.world.memory.dim:
                    log.warning("memory row %d has width %d, not %d: skipped", row.id, vector.shape[0],
                                self.world.memory.dim)  # fmt: skip
                    continue
                entries.append(MemoryEntry(row.key, name, row.origin, vector))
            changed += self.world.memory.add(entries)
            self.last_id = rows[-1].id
            if len(rows) < POLL_BATCH:
                break
        if changed:
            self.world.refresh()
            log.info("memory of %s: %d faces changed; %d faces in all", self.version, changed,
                     len(self.world.memory))  # fmt: skip
        return changed

"""Per-key asyncio locks that live only while in use (the corrections cog serialises the edits of
one reply with them)."""

from __future__ import annotations

import asyncio
import weakref


class KeyedLocks:
    """One `asyncio.Lock` per key (a reply being edited), kept only while someone holds or awaits
    it: the map never outgrows the work in flight, however many replies a long-running bot edits."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[int, asyncio.Lock] = weakref.WeakValueDictionary()

    def __call__(self, key: int) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock

    def __len__(self) -> int:
        return len(self._locks)

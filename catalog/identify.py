"""Gateway IDENTIFY pacing shared by every process of one bot, through the catalog.

Discord lets a bot start one session per 5 s in each concurrency bucket (`shard_id %
max_concurrency`) and answers a faster IDENTIFY with Invalid Session. discord.py paces the shards
of one process (it sleeps 5 s before each IDENTIFY but the first); shards spread over processes
or machines need a shared clock, and the catalog is what they share. Each bucket has a row
holding when its next IDENTIFY may go; a process takes the slot in one short transaction (the
row locked: `FOR UPDATE` on PostgreSQL, `BEGIN IMMEDIATE` on SQLite), moves the row on by the
interval, and sleeps until its slot outside the transaction. Times come from the database's
clock on PostgreSQL, so machines with skewed clocks still agree.
"""

from __future__ import annotations

import time
from typing import NamedTuple

from sqlalchemy import Engine, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from catalog.db import is_sqlite, session_scope
from catalog.schema import IdentifySlot

# An IDENTIFY leaves a process a little after its slot and reaches Discord after a network trip
# (and any event-loop lag on either side): slots are spaced this much wider than the limit so
# that two IDENTIFYs never arrive closer than it.
MARGIN_FRACTION = 0.1
MARGIN_MIN_S = 0.25


def slot_spacing(interval_s: float) -> float:
    """Seconds between reserved slots for Discord's `interval_s` (0: no pacing)."""
    if interval_s <= 0:
        return 0.0
    return interval_s + max(MARGIN_MIN_S, MARGIN_FRACTION * interval_s)


class Slot(NamedTuple):
    at: float  # when the IDENTIFY may go, epoch seconds by the catalog's clock
    wait_s: float  # how long from the reservation until then


class IdentifySlots:
    """Reserve IDENTIFY slots per concurrency bucket; safe across threads, processes and machines."""

    def __init__(self, engine: Engine, interval_s: float) -> None:
        self.engine = engine
        self.spacing = slot_spacing(interval_s)

    def reserve(self, bucket: int) -> Slot:
        """Take the next slot of `bucket`: when, and how long to wait before IDENTIFYing."""
        insert = sqlite_insert if is_sqlite(self.engine) else pg_insert
        with session_scope(self.engine) as session:
            session.execute(insert(IdentifySlot).values(bucket=bucket, next_at=0.0).on_conflict_do_nothing())
            slot = session.scalars(
                select(IdentifySlot).where(IdentifySlot.bucket == bucket).with_for_update()
            ).one()
            now = self._now(session)
            start = max(now, slot.next_at)
            slot.next_at = start + self.spacing
            return Slot(start, start - now)

    def _now(self, session: Session) -> float:
        if is_sqlite(self.engine):
            return time.time()  # SQLite is one machine's file: its clock is ours
        return float(session.scalar(select(func.extract("epoch", func.clock_timestamp()))))

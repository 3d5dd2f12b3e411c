"""IDENTIFY slots through the catalog: one bucket's slots are spaced by Discord's interval plus a
margin, buckets are independent, and processes reserving at once never share a slot."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.identify import IdentifySlots, slot_spacing
from catalog.schema import IdentifySlot

ROOT = Path(__file__).resolve().parents[2]


def test_spacing_is_the_interval_plus_a_margin() -> None:
    assert slot_spacing(0) == 0
    assert slot_spacing(5.0) == pytest.approx(5.5)
    assert slot_spacing(0.2) == pytest.approx(0.45)


def test_slots_of_a_bucket_follow_each_other(engine: Engine) -> None:
    slots = IdentifySlots(engine, interval_s=5.0)
    spacing = slots.spacing
    waits = [slots.reserve(0).wait_s for _ in range(3)]
    assert waits[0] == 0
    # The second and third wait one and two spacings, less the moments spent reserving.
    assert spacing - 1 < waits[1] <= spacing
    assert 2 * spacing - 1 < waits[2] <= 2 * spacing
    assert slots.reserve(1).wait_s == 0  # another bucket has its own pace
    with session_scope(engine) as session:
        rows = {s.bucket: s.next_at for s in session.scalars(select(IdentifySlot))}
    assert rows[0] - rows[1] == pytest.approx(2 * spacing, abs=1)


def test_no_pacing_when_the_interval_is_zero(engine: Engine) -> None:
    slots = IdentifySlots(engine, interval_s=0)
    assert [slots.reserve(0).wait_s for _ in range(3)] == [0, 0, 0]


@pytest.mark.timeout(120)
def test_processes_reserving_at_once_get_distinct_spaced_slots(engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    interval = 0.5
    spacing = slot_spacing(interval)
    # Started well before the common moment, so that every child has imported and connected.
    start_at = time.time() + 4.0
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.catalog.identify_child", url, str(interval), str(start_at)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    starts = sorted(float(child.communicate(timeout=60)[0]) for child in children)
    assert all(child.returncode == 0 for child in children)
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= spacing - 1e-6 for gap in gaps), gaps

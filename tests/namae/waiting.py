"""Waiting for another process or thread to reach a state recorded in the catalog."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `predicate` until it holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    tick = threading.Event()
    while not predicate():
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        tick.wait(0.05)  # polling the catalog for a state change; not a synchronisation sleep

"""Readers loading the active model while promotions happen get the old or the new one, never an error."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from models.classifier import Classifier
from models.registry import Registry
from tests.models.helpers import random_images, stage_version

READERS = 3
SWITCHES = 12
TIMEOUT_S = 60.0


def test_readers_see_old_or_new_during_promotions(tmp_path: Path, tiny_onnx: Path) -> None:
    registry = Registry(tmp_path / "models", keep_last=5)
    old, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(old)
    new, _ = stage_version(registry, tiny_onnx, f1=0.5)
    image = random_images(1, seed=2)[0]

    stop = threading.Event()
    progress = threading.Condition()
    loads = [0]
    seen: set[str] = set()
    errors: list[BaseException] = []

    def read() -> None:
        # Each reader has its own Registry object, as the bot process would.
        mine = Registry(registry.root)
        while not stop.is_set():
            try:
                classifier = Classifier.from_registry(mine, intra_op_threads=1)
                [answer] = classifier.predict_batch([image])
                assert len(answer) == 3
            except BaseException as exc:  # noqa: BLE001 - any failure at all is the bug under test
                errors.append(exc)
                stop.set()
                return
            with progress:
                seen.add(classifier.version)
                loads[0] += 1
                progress.notify_all()

    def wait_for_loads(count: int) -> None:
        with progress:
            assert progress.wait_for(lambda: loads[0] >= count or stop.is_set(), timeout=TIMEOUT_S)

    threads = [threading.Thread(target=read, daemon=True) for _ in range(READERS)]
    for thread in threads:
        thread.start()
    try:
        for switch in range(SWITCHES):
            # Promote only once readers have loaded since the last switch, so loads straddle switches.
            wait_for_loads(loads[0] + READERS)
            target = new if switch % 2 == 0 else old
            assert registry.promote(target, force=True).promoted
        wait_for_loads(loads[0] + READERS)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=TIMEOUT_S)
    assert not errors, errors
    assert seen == {old, new}
    assert loads[0] >= READERS * (SWITCHES + 1)


def test_readers_never_see_a_registering_version_half_written(tmp_path: Path, tiny_onnx: Path) -> None:
    """While candidates are registered and pruned, every listed version reads whole."""
    registry = Registry(tmp_path / "models", keep_last=2)
    first, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(first)
    stop = threading.Event()
    problems: list[str] = []
    listings = [0]

    def list_versions() -> None:
        mine = Registry(registry.root)
        while not stop.is_set():
            problems.extend(e.problem for e in mine.versions() if e.problem)
            listings[0] += 1

    reader = threading.Thread(target=list_versions, daemon=True)
    reader.start()
    try:
        for _ in range(8):
            stage_version(registry, tiny_onnx, f1=0.4)
    finally:
        stop.set()
        reader.join(timeout=TIMEOUT_S)
    assert problems == []
    assert listings[0] > 0
    assert len(registry.versions()) == 2 + 1  # keep_last 2, plus the active one
    assert np.all([e.card is not None for e in registry.versions()])

"""kill -9 of a registry writer at each crash-relevant step: after a restart the registry loads,
the active model is whole (the old one, or the new one once the switch happened), and no
half-written version is ever registered."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from models.classifier import Classifier
from models.registry import Registry
from tests.models.tiny import IMAGE_SIZE, TinyNet, stage_version
from trainer.export import export_onnx

REPO = Path(__file__).resolve().parents[2]
CHILD_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def onnx_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("crash") / "tiny.onnx"
    export_onnx(TinyNet(seed=0), out_path=path, image_size=IMAGE_SIZE)
    return path


@pytest.fixture
def populated(tmp_path: Path, onnx_file: Path) -> tuple[Path, str, str, str]:
    """v1 then v2 promoted (v2 active, v1 its rollback target), v3 a candidate."""
    root = tmp_path / "models"
    registry = Registry(root)
    v1, _ = stage_version(registry, onnx_file, f1=0.5)
    registry.promote(v1)
    v2, _ = stage_version(registry, onnx_file, f1=0.6)
    registry.promote(v2)
    v3, _ = stage_version(registry, onnx_file, f1=0.7)
    return root, v1, v2, v3


def _kill_at(root: Path, mode: str, step: str, *extra: str) -> None:
    """Run a writer until it reports `step`, then SIGKILL it there."""
    # stderr goes to a file: a chatty child must never block on a full pipe.
    errors = root.parent / f"child-{mode}.stderr"
    with errors.open("w") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.models.crash_child", str(root), mode, step, *extra],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=sink,
            text=True,
        )
    try:
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + CHILD_TIMEOUT_S
        line = ""
        while time.monotonic() < deadline and not line:
            if selector.select(timeout=deadline - time.monotonic()):
                said = proc.stdout.readline()
                if not said:
                    line = "EOF"
                elif said.startswith("STEP "):  # libraries may print their own chatter
                    line = said.removeprefix("STEP ").strip()
        assert line == step, f"child said {line!r} instead of reaching {step}: {errors.read_text()[-2000:]}"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=CHILD_TIMEOUT_S) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()


def _check_intact(root: Path, expected_active: str, expected_versions: list[str]) -> Registry:
    registry = Registry(root)  # the restart
    assert registry.active_version() == expected_active
    classifier = Classifier.from_registry(registry)
    assert classifier.version == expected_active
    entries = registry.versions()
    assert [e.version for e in entries] == expected_versions
    assert all(e.card is not None for e in entries), [e.problem for e in entries]
    return registry


@pytest.mark.parametrize(
    ("mode", "step"),
    [
        ("export", "export:onnx_written"),  # a real torch export: model.onnx staged, no card yet
        ("export", "export:card_written"),
        ("register", "register:validated"),  # a complete folder, validated, not yet moved in
    ],
)
def test_kill_during_export_registers_nothing(populated, onnx_file: Path, mode: str, step: str) -> None:
    root, v1, v2, v3 = populated
    _kill_at(root, mode, step, *([str(onnx_file)] if mode == "register" else []))
    registry = _check_intact(root, v2, [v1, v2, v3])
    # The next writer sweeps what the killed one left (here: forced, as if hours had passed).
    leftovers = list(registry.staging_root.iterdir())
    assert len(leftovers) == 1
    os.utime(leftovers[0], (0, 0))
    registry.prune()
    assert not list(registry.staging_root.iterdir())
    # And version numbering carries on without clashing.
    assert registry.new_version_dir()[0] > v3


def test_kill_right_after_register_leaves_a_whole_candidate(populated, onnx_file: Path) -> None:
    root, v1, v2, v3 = populated
    _kill_at(root, "register", "register:moved", str(onnx_file))
    registry = Registry(root)
    entries = registry.versions()
    assert [e.version for e in entries][:3] == [v1, v2, v3]
    [new] = entries[3:]
    assert new.status == "candidate" and new.card is not None
    assert Classifier.load(new.path).version == new.version
    assert registry.active_version() == v2


@pytest.mark.parametrize(("step", "switched"), [("promote:before_switch", False), ("promote:switched", True)])
def test_kill_during_promotion_keeps_a_whole_active_model(populated, step: str, switched: bool) -> None:
    root, v1, v2, v3 = populated
    _kill_at(root, "promote", step, v3)
    registry = _check_intact(root, v3 if switched else v2, [v1, v2, v3])
    # The stray pointer temp file of the killed writer never confuses readers, and is swept.
    registry.prune()
    assert not list(root.glob(".ACTIVE.*"))
    assert registry.rollback() == (v2 if switched else v1)


def test_kill_during_rollback_keeps_a_whole_active_model(populated) -> None:
    root, v1, v2, v3 = populated
    _kill_at(root, "rollback", "rollback:before_switch")
    registry = _check_intact(root, v2, [v1, v2, v3])
    assert registry.rollback() == v1

"""Promotion is atomic across processes, on both backends (a folder; a bucket on a real S3 server).

Three promoter processes, each with its own data directory, promote their own versions at the same
time while two reader processes load the active model in a loop. Every promotion is a
compare-and-swap of the pointer, so the promotions form one chain: each one replaced the version
the one before it made active, and none was lost (two writers that both read the same pointer and
both "won" would leave two promotions claiming the same predecessor, and the chain would break).
Readers only ever load whole versions that the pointer lists."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from catalog.settings import Settings
from catalog.settings_sections import StoreSettings
from tests.models.helpers import make_registry, stage_version

REPO = Path(__file__).resolve().parents[2]
PROMOTERS = 3
PER_PROMOTER = 4
READERS = 2
TIMEOUT_S = 240.0


def _child(settings: Settings, *args: str) -> subprocess.Popen[str]:
    dump = settings.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key", "session_token"):
        secret = getattr(settings.store, key)
        dump["store"][key] = secret.get_secret_value() if secret is not None else None
    return subprocess.Popen(
        [sys.executable, "-m", "tests.models.promotion_child", json.dumps(dump), *args],
        cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )  # fmt: skip


def _wait_ready(process: subprocess.Popen[str]) -> None:
    line = process.stdout.readline()  # the child says so once its registry is open
    assert line.strip() == "ready", f"child said {line!r}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_concurrent_promotions_form_one_chain_and_readers_see_whole_versions(
    tmp_path: Path, tiny_onnx: Path, store_settings: StoreSettings
) -> None:
    # Folder backend: one machine, every process's data directory the same; S3: one each.
    shared_data = tmp_path / "shared-data"
    registry = make_registry(shared_data / "models", store_settings, keep_last=1000)
    first, _ = stage_version(registry, tiny_onnx, f1=0.5)
    assert registry.promote(first).promoted
    plans = [
        [stage_version(registry, tiny_onnx, f1=0.5)[0] for _ in range(PER_PROMOTER)] for _ in range(PROMOTERS)
    ]

    def settings_for(name: str) -> Settings:
        data_dir = shared_data if store_settings.url is None else tmp_path / name
        return Settings(_env_file=None, data_dir=data_dir, store=store_settings)

    readers = [_child(settings_for(f"reader-{i}"), "read") for i in range(READERS)]
    promoters = [
        _child(settings_for(f"promoter-{i}"), "promote", ",".join(plan)) for i, plan in enumerate(plans)
    ]
    try:
        for child in [*readers, *promoters]:
            _wait_ready(child)
        for child in [*readers, *promoters]:  # all at once
            child.stdin.write("go\n")
            child.stdin.flush()
        promotions = []
        deadline = time.monotonic() + TIMEOUT_S
        for child in promoters:
            out, _ = child.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert child.returncode == 0, out
            promotions += [json.loads(line) for line in out.splitlines()]
        loads = []
        for child in readers:
            out, _ = child.communicate("", timeout=max(1.0, deadline - time.monotonic()))
            loads += [json.loads(line) for line in out.splitlines()]
    finally:
        for child in [*readers, *promoters]:
            if child.poll() is None:
                child.kill()
                child.wait()

    # One chain: every promotion replaced exactly the version the previous one made active.
    assert len(promotions) == PROMOTERS * PER_PROMOTER and all(p["promoted"] for p in promotions)
    successor = {}
    for promotion in promotions:
        assert promotion["previous"] not in successor, f"two promotions both replaced {promotion['previous']}"
        successor[promotion["previous"]] = promotion["version"]
    chain, current = [first], first
    while current in successor:
        current = successor[current]
        chain.append(current)
    assert len(chain) == 1 + len(promotions), "a promotion was lost"
    final = make_registry(shared_data / "models" if store_settings.url is None else tmp_path / "observer",
                          store_settings, keep_last=1000)  # fmt: skip
    assert final.active_version() == chain[-1]
    assert final.previous_version() == chain[-2]
    assert [e.version for e in final.versions() if e.status == "active"] == [chain[-1]], "exactly one active"

    # Readers: only whole versions, each listed in the pointer, and they saw the model change.
    errors = [load["error"] for load in loads if "error" in load]
    assert not errors, errors[0]
    assert loads and all(load["registered"] and load["answers"] == 3 for load in loads)
    assert {load["version"] for load in loads} <= set(chain)

"""The registry: register, the promotion gate, --force, rollback, pruning, and bad folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.schema import ModelVersion
from catalog.settings_sections import StoreSettings
from models.card import CARD_NAME, ONNX_NAME
from models.classifier import Classifier
from models.errors import ModelLoadError, NoActiveModel, RegistryError
from models.memory import MEMORY_NAME, CharacterMemory, MemoryEntry, MemoryFileError
from models.openset import OpenSetThresholds
from models.pointer import POINTER_KEY
from models.registry import Registry
from tests.models.helpers import make_registry
from tests.models.tiny import LABELS, stage_version


@pytest.fixture
def registry(tmp_path: Path, store_settings: StoreSettings) -> Registry:
    """On each backend: a folder, and a bucket on the S3 test server."""
    return make_registry(tmp_path / "models", store_settings, margin=0.02, keep_last=3)


def test_empty_registry_has_no_active_model(registry: Registry) -> None:
    assert registry.active_version() is None
    assert registry.active_dir() is None
    assert registry.versions() == []
    with pytest.raises(NoActiveModel, match="no model is active"):
        Classifier.from_registry(registry)
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback()


def test_register_then_promote_first_version(registry: Registry, tiny_onnx: Path) -> None:
    version, folder = stage_version(registry, tiny_onnx, f1=0.8)
    assert version.startswith("v0001-")
    [entry] = registry.versions()
    assert (entry.version, entry.status) == (version, "candidate")
    assert entry.labels == LABELS and entry.metrics == {"test_macro_f1": 0.8}  # reads like its card
    assert entry.as_dict()["status"] == "candidate" and entry.as_dict()["thresholds"]["global"] == 0.5
    assert registry.active_version() is None

    result = registry.promote(version)
    assert result.promoted and result.previous is None
    assert registry.active_version() == version
    assert registry.active_dir() == folder
    assert registry.card(version).labels == LABELS
    assert Classifier.from_registry(registry).version == version
    assert not list(registry.staging_root.iterdir())


def test_gate_refuses_a_worse_candidate_and_force_overrides(registry: Registry, tiny_onnx: Path) -> None:
    good, _ = stage_version(registry, tiny_onnx, f1=0.80)
    registry.promote(good)

    within_margin, _ = stage_version(registry, tiny_onnx, f1=0.79)  # 0.01 worse, margin 0.02
    worse, _ = stage_version(registry, tiny_onnx, f1=0.70)

    refused = registry.promote(worse)
    assert not refused.promoted
    assert "0.7000" in refused.reason and "0.8000" in refused.reason
    assert registry.active_version() == good
    status = {e.version: e.status for e in registry.versions()}
    assert status[worse] == "refused"

    assert registry.promote(within_margin).promoted
    assert registry.active_version() == within_margin

    forced = registry.promote(worse, force=True)
    assert forced.promoted and forced.reason.startswith("forced")
    assert forced.previous == within_margin
    assert registry.active_version() == worse
    status = {e.version: e.status for e in registry.versions()}
    assert status == {good: "retired", within_margin: "retired", worse: "active"}


def test_newest_candidate_is_the_latest_version_not_yet_promoted(registry: Registry, tiny_onnx: Path) -> None:
    with pytest.raises(RegistryError, match="no candidate"):
        registry.newest_candidate()
    first, _ = stage_version(registry, tiny_onnx, f1=0.8)
    second, _ = stage_version(registry, tiny_onnx, f1=0.9)
    assert registry.newest_candidate() == second
    assert registry.promote(second).promoted
    assert registry.newest_candidate() == first  # still a candidate, never promoted


def test_candidate_without_metric_is_refused_unless_forced(registry: Registry, tiny_onnx: Path) -> None:
    first, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(first)
    blind, _ = stage_version(registry, tiny_onnx, f1=None)
    result = registry.promote(blind)
    assert not result.promoted and "no test_macro_f1" in result.reason
    assert registry.promote(blind, force=True).promoted


def test_promoting_the_active_version_changes_nothing(registry: Registry, tiny_onnx: Path) -> None:
    version, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(version)
    before = registry.objects.get(POINTER_KEY)
    result = registry.promote(version)
    assert not result.promoted and "already active" in result.reason
    assert registry.objects.get(POINTER_KEY) == before


def test_rollback_restores_previous_versions_in_order(registry: Registry, tiny_onnx: Path) -> None:
    v1, _ = stage_version(registry, tiny_onnx, f1=0.6)
    registry.promote(v1)
    v2, _ = stage_version(registry, tiny_onnx, f1=0.7)
    registry.promote(v2)
    v3, _ = stage_version(registry, tiny_onnx, f1=0.8)
    registry.promote(v3)

    assert registry.rollback() == v2
    assert registry.active_version() == v2
    assert Classifier.from_registry(registry).version == v2
    assert registry.rollback() == v1
    with pytest.raises(RegistryError, match="no previous version"):
        registry.rollback()
    assert registry.active_version() == v1
    # The rolled-back version can come back through the gate.
    assert registry.promote(v3).promoted


def test_prune_keeps_last_n_and_never_the_active_or_its_rollback_target(
    registry: Registry, tiny_onnx: Path
) -> None:
    v1, _ = stage_version(registry, tiny_onnx, f1=0.6)
    registry.promote(v1)
    v2, _ = stage_version(registry, tiny_onnx, f1=0.7)
    registry.promote(v2)
    # keep_last=3: four more candidates; pruning runs on each register.
    later = [stage_version(registry, tiny_onnx, f1=0.5)[0] for _ in range(4)]
    kept = [e.version for e in registry.versions()]
    assert kept == [v1, v2, *later[-3:]]
    assert registry.active_version() == v2
    assert registry.rollback() == v1  # the rollback target survived
    assert not list(registry.trash_root.iterdir())
    # Now v2 is neither active, nor a rollback target, nor among the newest three.
    assert registry.prune() == [v2]
    assert registry.prune() == []
    assert [e.version for e in registry.versions()] == [v1, *later[-3:]]


def test_version_ids_are_sortable_and_unique(registry: Registry) -> None:
    ids = [registry.new_version_dir()[0] for _ in range(12)]
    assert ids == sorted(ids) and len(set(ids)) == 12
    assert all(len(i.split("-")[0]) == 5 for i in ids)


def test_catalog_mirror_follows_the_registry(
    tiny_onnx: Path, tmp_path: Path, engine: Engine, store_settings: StoreSettings
) -> None:
    registry = make_registry(tmp_path / "models", store_settings, engine, margin=0.0, keep_last=2)
    v1, _ = stage_version(registry, tiny_onnx, f1=0.6)
    registry.promote(v1)
    v2, _ = stage_version(registry, tiny_onnx, f1=0.1)
    registry.promote(v2)  # refused
    with session_scope(engine) as session:
        rows = {
            r.version: (r.status, r.parent, r.metrics.get("test_macro_f1"))
            for r in session.scalars(select(ModelVersion))
        }
    assert rows == {v1: ("active", None, 0.6), v2: ("refused", v1, 0.1)}

    v3, _ = stage_version(registry, tiny_onnx, f1=0.9)
    registry.promote(v3)
    with session_scope(engine) as session:
        rows = {r.version: r.status for r in session.scalars(select(ModelVersion))}
    assert rows == {v1: "retired", v2: "refused", v3: "active"}

    v4, _ = stage_version(registry, tiny_onnx, f1=0.9)
    with session_scope(engine) as session:
        rows = {r.version: r.status for r in session.scalars(select(ModelVersion))}
    # keep_last=2 pruned the refused v2; v1 stays as the rollback target.
    assert rows == {v1: "retired", v3: "active", v4: "candidate"}


# -- bad folders: a clear error, and the active model untouched --------------------------------


@pytest.fixture
def with_active(registry: Registry, tiny_onnx: Path) -> str:
    version, _ = stage_version(registry, tiny_onnx, f1=0.5)
    registry.promote(version)
    return version


def _assert_untouched(registry: Registry, active: str, pointer: bytes) -> None:
    assert registry.active_version() == active
    assert registry.objects.get(POINTER_KEY) == pointer
    assert Classifier.from_registry(registry).version == active


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: (d / CARD_NAME).unlink(), "has no model.json"),
        (lambda d: (d / CARD_NAME).write_text("{not json"), "not readable JSON"),
        (lambda d: _edit_card(d, labels=["only one"]), "1 labels"),
        (lambda d: _edit_card(d, image_size=64), "does not match"),
        (lambda d: _edit_card(d, version="v9999-20260101T0000"), "says version"),
        (lambda d: _edit_card(d, temperature=-1), "temperature"),
        (lambda d: _edit_card(d, thresholds={"per_class": {"Nobody": 0.3}}), "labels the model lacks"),
        (lambda d: (d / ONNX_NAME).write_bytes(b"\x08\x01garbage"), "does not match its card"),
    ],
)
def test_bad_candidate_folder_is_refused_clearly(
    registry: Registry, with_active: str, tiny_onnx: Path, damage, message: str
) -> None:
    pointer = registry.objects.get(POINTER_KEY)
    _, staging = stage_version(registry, tiny_onnx, f1=0.9, register=False)
    damage(staging)
    with pytest.raises(ModelLoadError, match=message):
        registry.register(staging)
    assert [e.version for e in registry.versions()] == [with_active]
    _assert_untouched(registry, with_active, pointer)


def test_onnx_that_does_not_load_is_refused(registry: Registry, with_active: str, tiny_onnx: Path) -> None:
    pointer = registry.objects.get(POINTER_KEY)
    _, staging = stage_version(registry, tiny_onnx, f1=0.9, register=False)
    (staging / ONNX_NAME).write_bytes(b"this is not a protobuf")
    _edit_card(staging, onnx_sha256=None)  # so that onnxruntime itself must notice
    with pytest.raises(ModelLoadError, match="does not load in onnxruntime"):
        registry.register(staging)
    _assert_untouched(registry, with_active, pointer)


def test_damaged_registered_version_cannot_be_promoted(
    registry: Registry, with_active: str, tiny_onnx: Path
) -> None:
    candidate, folder = stage_version(registry, tiny_onnx, f1=0.9)
    pointer = registry.objects.get(POINTER_KEY)
    key = f"versions/{candidate}"
    registry.objects.put(f"{key}/{ONNX_NAME}", registry.objects.get(f"{key}/{ONNX_NAME}")[:200])  # truncated
    if registry.remote:
        shutil.rmtree(folder)  # this machine's copy, taken before the damage
    with pytest.raises(ModelLoadError, match="does not match its card"):
        registry.promote(candidate, force=True)
    registry.objects.delete(f"{key}/{CARD_NAME}")
    entry = {e.version: e for e in registry.versions()}[candidate]
    assert entry.status == "broken" and "no model.json" in entry.problem
    _assert_untouched(registry, with_active, pointer)


def test_unknown_or_malformed_version_names(registry: Registry, with_active: str) -> None:
    with pytest.raises(RegistryError, match="no version"):
        registry.promote("v0042-20260101T0000")
    with pytest.raises(RegistryError, match="not a version id"):
        registry.promote("../../etc")


def test_register_copies_a_folder_from_outside(registry: Registry, tiny_onnx: Path, tmp_path: Path) -> None:
    version, staging = stage_version(registry, tiny_onnx, f1=0.4, register=False)
    outside = tmp_path / "elsewhere" / "built"
    shutil.move(staging, outside)
    card = registry.register(outside)
    assert card.version == version
    assert registry.version_dir(version).is_dir()


def test_register_imports_another_registrys_version_into_an_empty_store(
    registry: Registry, tiny_onnx: Path, tmp_path: Path
) -> None:
    """A version folder built by another registry (no reservation here) lands in an empty store as a
    candidate: the upload is not mistaken for a version registered before the pointer existed."""
    other = Registry(tmp_path / "other")
    version, source = stage_version(other, tiny_onnx, f1=0.6)
    assert registry.versions() == []

    card = registry.register(source)

    assert card.version == version
    assert [(e.version, e.status) for e in registry.versions()] == [(version, "candidate")]
    assert registry.promote(version).promoted
    assert Classifier.from_registry(registry).version == version
    assert not list(registry.staging_root.iterdir())
    with pytest.raises(RegistryError, match="already registered"):
        registry.register(source)


def _edit_card(folder: Path, **changes) -> None:
    path = folder / CARD_NAME
    raw = json.loads(path.read_text())
    raw.update(changes)
    path.write_text(json.dumps(raw))


def _memory(per: int = 3, dim: int = 16) -> CharacterMemory:
    rng = np.random.default_rng(7)
    memory = CharacterMemory(dim)
    for index in range(per * len(LABELS)):
        vector = rng.standard_normal(dim).astype(np.float32)
        memory.add(
            [
                MemoryEntry(
                    f"k{index}", LABELS[index % len(LABELS)], "training", vector / np.linalg.norm(vector)
                )
            ]
        )
    return memory


OPEN_SET = OpenSetThresholds(sharpness=10.0, name=0.9, pair=0.95, known=0.3, not_character=0.1)


def test_a_versions_memory_travels_with_it_to_a_machine_with_its_own_data_dir(
    tmp_path: Path, store_settings: StoreSettings, tiny_onnx: Path
) -> None:
    trainer = make_registry(tmp_path / "trainer", store_settings)
    version, _ = stage_version(trainer, tiny_onnx, f1=0.8, memory=_memory(), open_set=OPEN_SET)
    trainer.promote(version)
    # a bucket: the bot's data directory starts empty; a folder: the registry is the folder
    bot = make_registry(tmp_path / ("trainer" if store_settings.url is None else "bot"), store_settings)
    classifier = Classifier.from_registry(bot)
    assert classifier.version == version and classifier.world is not None
    assert classifier.world.memory.counts() == {label: 3 for label in LABELS}
    assert classifier.world.thresholds == OPEN_SET


def test_open_set_thresholds_without_their_memory_are_refused(registry: Registry, tiny_onnx: Path) -> None:
    _, staging = stage_version(registry, tiny_onnx, f1=0.8, open_set=OPEN_SET, register=False)
    with pytest.raises(MemoryFileError, match=MEMORY_NAME):
        registry.register(staging)
    assert registry.versions() == []

"""The model registry: immutable version folders, one active pointer, promotion, rollback, pruning.

Layout under `root`::

    ACTIVE                      the pointer and its history (JSON), replaced atomically
    versions/<version>/         model.onnx + model.json; never modified once registered
    .staging/<version>/         an export in progress; renamed into versions/ when complete
    .trash/                     folders being pruned (renamed out first, then deleted)
    .lock                       writers (register, promote, rollback, prune) hold it exclusively

A reader resolves ACTIVE once and loads that folder. Folders only ever appear whole (rename) and
the pointer only ever changes whole (temp file + fsync + os.replace), so a reader sees the old
model or the new one, and a writer killed at any instant leaves the registry as it was before or
after its step. Writers serialize on an flock; readers take no lock.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from catalog.fsutil import fsync_dir, fsync_file
from models.card import CARD_NAME, ONNX_NAME, VERSION_RE, ModelCard, read_card
from models.errors import ModelLoadError, NoActiveModel, RegistryError
from models.runtime import check_signature, open_session

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from catalog.settings import Settings

__all__ = [
    "ModelCard",
    "PromotionResult",
    "Registry",
    "RegistryError",
    "VersionEntry",
    "validate_folder",
]

log = logging.getLogger(__name__)

STATE_NAME = "ACTIVE"
VERSIONS_DIR = "versions"
STAGING_DIR = ".staging"
TRASH_DIR = ".trash"
LOCK_NAME = ".lock"
STALE_STAGING_S = 6 * 3600

# Statuses as the catalog's ModelStatus spells them (models may import catalog, but the registry
# must also work for a bot that never touches the schema module's SQLAlchemy side).
ACTIVE, CANDIDATE, RETIRED, REFUSED, BROKEN = "active", "candidate", "retired", "refused", "broken"


@dataclass(frozen=True)
class PromotionResult:
    promoted: bool
    reason: str
    previous: str | None  # the version active before the call


@dataclass(frozen=True)
class VersionEntry:
    """One folder of the registry with its status; `card` is None (and `problem` says why) when the
    folder cannot be read."""

    version: str
    status: str
    path: Path
    card: ModelCard | None
    problem: str | None = None
    promoted_at: datetime | None = None
    note: str | None = None  # why a candidate was refused

    def __getattr__(self, name: str) -> Any:
        # An entry reads like its card (entry.metrics, entry.labels, ...) when the card is readable.
        card = self.__dict__.get("card")
        if card is not None and name in type(card).model_fields:
            return getattr(card, name)
        raise AttributeError(name)

    def as_dict(self) -> dict[str, Any]:
        card = self.card.model_dump(mode="json", by_alias=True) if self.card is not None else {}
        return {
            **card,
            "version": self.version,
            "status": self.status,
            "path": str(self.path),
            "problem": self.problem,
            "promoted_at": self.promoted_at.isoformat() if self.promoted_at else None,
            "note": self.note,
        }


@dataclass
class _State:
    """The content of ACTIVE. `history` is the stack of previously active versions (rollback pops)."""

    active: str | None = None
    history: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)
    promoted_at: dict[str, str] = field(default_factory=dict)
    updated_at: str | None = None

    @classmethod
    def parse(cls, text: str, where: Path) -> _State:
        try:
            raw = json.loads(text)
            return cls(
                active=raw.get("active"),
                history=list(raw.get("history", [])),
                retired=list(raw.get("retired", [])),
                refused=dict(raw.get("refused", {})),
                promoted_at=dict(raw.get("promoted_at", {})),
                updated_at=raw.get("updated_at"),
            )
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError) as exc:
            raise RegistryError(f"{where} is not a registry pointer file: {exc}") from exc

    def dump(self) -> str:
        self.updated_at = datetime.now(UTC).isoformat()
        return json.dumps(self.__dict__, indent=2) + "\n"


def version_number(version: str) -> int:
    match = VERSION_RE.match(version)
    if not match:
        raise RegistryError(f"{version!r} is not a version id (expected like v0001-20261121T0700)")
    return int(match["number"])


def validate_folder(folder: Path, *, expect_version: str | None = None) -> ModelCard:
    """Everything a reader will rely on: the card parses and matches the folder and the ONNX bytes,
    the graph loads in onnxruntime, takes the card's input and runs on one image."""
    card = read_card(folder, expect_version=expect_version, verify_hash=True)
    session = open_session(folder / ONNX_NAME, providers=["CPUExecutionProvider"], intra_op_threads=1)
    check_signature(session, card, folder)
    probe = np.zeros((1, card.image_size, card.image_size, 3), dtype=np.uint8)
    try:
        logits, embedding = session.run(None, {session.get_inputs()[0].name: probe})
    except Exception as exc:  # onnxruntime's errors are untyped
        raise ModelLoadError(f"{folder / ONNX_NAME} loads but does not run: {exc}") from exc
    if logits.shape != (1, len(card.labels)) or embedding.ndim != 2 or embedding.shape[0] != 1:
        raise ModelLoadError(
            f"{folder / ONNX_NAME} returned logits {logits.shape} and embedding {embedding.shape} "
            f"for one image; the card has {len(card.labels)} labels"
        )
    return card


class Registry:
    def __init__(
        self,
        root: Path,
        engine: Engine | None = None,
        *,
        margin: float = 0.01,
        keep_last: int = 5,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """`on_step` is called with the name of each crash-relevant step of a write (observability,
        and how the crash tests choose the instant to kill a writer)."""
        if margin < 0:
            raise RegistryError(f"promotion margin must be >= 0, got {margin}")
        if keep_last < 2:
            raise RegistryError(
                f"keep_last must keep at least the active version and one other, got {keep_last}"
            )
        self.root = Path(root)
        self.engine = engine
        self.margin = margin
        self.keep_last = keep_last
        self.on_step = on_step
        try:
            for sub in (self.versions_root, self.staging_root, self.trash_root):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"model registry {self.root} cannot be created: {exc.strerror}") from exc

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None, **kw: Any) -> Registry:
        kw.setdefault("margin", settings.registry.promotion_margin)
        kw.setdefault("keep_last", settings.registry.keep_last)
        return cls(settings.registry_dir, engine, **kw)

    # -- paths and reading ---------------------------------------------------------------------

    @property
    def versions_root(self) -> Path:
        return self.root / VERSIONS_DIR

    @property
    def staging_root(self) -> Path:
        return self.root / STAGING_DIR

    @property
    def trash_root(self) -> Path:
        return self.root / TRASH_DIR

    @property
    def pointer_path(self) -> Path:
        return self.root / STATE_NAME

    def version_dir(self, version: str) -> Path:
        version_number(version)  # refuses path tricks such as "../x"
        return self.versions_root / version

    def _state(self) -> _State:
        try:
            text = self.pointer_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return _State()
        except OSError as exc:
            raise RegistryError(f"{self.pointer_path} cannot be read: {exc.strerror}") from exc
        return _State.parse(text, self.pointer_path)

    def active_version(self) -> str | None:
        return self._state().active

    def active_dir(self) -> Path | None:
        version = self.active_version()
        return None if version is None else self.version_dir(version)

    def require_active(self) -> tuple[str, Path]:
        version = self.active_version()
        if version is None:
            raise NoActiveModel(f"no model is active in {self.root}: train one, or promote a candidate")
        return version, self.version_dir(version)

    def newest_candidate(self) -> str:
        """The most recent version still waiting for promotion."""
        candidates = [entry.version for entry in self.versions() if entry.status == CANDIDATE]
        if not candidates:
            raise RegistryError("no candidate model version to promote")
        return candidates[-1]

    def previous_version(self) -> str | None:
        history = self._state().history
        return history[-1] if history else None

    def _folder_versions(self) -> list[str]:
        names = [p.name for p in self.versions_root.iterdir() if p.is_dir() and VERSION_RE.match(p.name)]
        return sorted(names, key=version_number)

    def card(self, version: str) -> ModelCard:
        folder = self.version_dir(version)
        if not folder.is_dir():
            raise RegistryError(f"no version {version!r} in {self.root}")
        return read_card(folder, expect_version=version, verify_hash=False)

    def versions(self) -> list[VersionEntry]:
        state = self._state()
        entries = []
        for version in self._folder_versions():
            folder = self.versions_root / version
            try:
                card, problem = read_card(folder, expect_version=version, verify_hash=False), None
            except ModelLoadError as exc:
                if not folder.is_dir():
                    continue  # pruned by a writer while we listed
                card, problem = None, str(exc)
            if problem is not None:
                status = BROKEN
            elif version == state.active:
                status = ACTIVE
            elif version in state.refused:
                status = REFUSED
            elif version in state.retired or version in state.history:
                status = RETIRED
            else:
                status = CANDIDATE
            promoted = state.promoted_at.get(version)
            entries.append(
                VersionEntry(
                    version=version,
                    status=status,
                    path=folder,
                    card=card,
                    problem=problem,
                    promoted_at=datetime.fromisoformat(promoted) if promoted else None,
                    note=state.refused.get(version),
                )
            )
        return entries

    # -- writing -------------------------------------------------------------------------------

    def checkpoint(self, name: str) -> None:
        if self.on_step is not None:
            self.on_step(name)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # A fresh open file description per acquisition, so that threads of one process exclude
        # each other as well as processes do.
        with (self.root / LOCK_NAME).open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _write_state(self, state: _State, *, step: str | None = None) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=f".{STATE_NAME}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(state.dump().encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            if step:
                self.checkpoint(f"{step}:before_switch")
            os.replace(tmp, self.pointer_path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(self.root)
        if step:
            self.checkpoint(f"{step}:switched")

    def new_version_dir(self) -> tuple[str, Path]:
        """Reserve the next version id and an empty staging folder for it; write model.onnx and
        model.json there, then call `register`."""
        with self._locked():
            taken = [
                version_number(p.name)
                for base in (self.versions_root, self.staging_root)
                for p in base.iterdir()
                if VERSION_RE.match(p.name)
            ]
            number = max(taken, default=0) + 1
            version = f"v{number:04d}-{datetime.now(UTC):%Y%m%dT%H%M}"
            folder = self.staging_root / version
            folder.mkdir()
            return version, folder

    def register(self, staging_dir: Path) -> ModelCard:
        """Validate a finished folder and move it into the registry as a candidate, atomically.
        A folder outside the registry is copied into staging first."""
        staging_dir = Path(staging_dir)
        if not staging_dir.is_dir():
            raise RegistryError(f"{staging_dir} is not a folder")
        version = staging_dir.name
        if staging_dir.resolve().parent != self.staging_root.resolve():
            probe = read_card(staging_dir, verify_hash=False)
            version = probe.version
            copy = self.staging_root / f"{version}.import-{uuid.uuid4().hex[:8]}"
            shutil.copytree(staging_dir, copy)
            staging_dir = copy
        version_number(version)
        card = validate_folder(staging_dir, expect_version=version)
        for name in (ONNX_NAME, CARD_NAME):
            fsync_file(staging_dir / name)
        fsync_dir(staging_dir)
        self.checkpoint("register:validated")
        with self._locked():
            target = self.versions_root / version
            if target.exists():
                raise RegistryError(f"version {version} is already registered in {self.root}")
            os.rename(staging_dir, target)
            fsync_dir(self.versions_root)
            fsync_dir(self.staging_root)
            self.checkpoint("register:moved")
            log.info("registered model %s (%d labels) as a candidate", version, len(card.labels))
            self._prune_locked()
        self.sync_catalog()
        return card

    def _gate(self, card: ModelCard, active: str | None, force: bool) -> tuple[bool, str]:
        if active is None:
            return True, "no version was active"
        try:
            active_card = self.card(active)
        except RegistryError as exc:
            return True, f"the active version {active} is unreadable ({exc}); replacing it"
        new, old = card.test_macro_f1, active_card.test_macro_f1
        if new is None:
            verdict = False, f"{card.version} has no test_macro_f1 metric to compare"
        elif old is None:
            verdict = True, f"the active version {active} has no test_macro_f1 metric"
        elif new + self.margin < old - 1e-12:
            shortfall = (
                f"test macro-F1 {new:.4f} is lower than the active {active}'s {old:.4f} "
                f"by more than the margin {self.margin:.4f}"
            )
            verdict = False, shortfall
        else:
            verdict = (
                True,
                f"test macro-F1 {new:.4f} vs the active {active}'s {old:.4f} (margin {self.margin:.4f})",
            )
        if force and not verdict[0]:
            return True, f"forced: {verdict[1]}"
        return verdict

    def promote(self, version: str, *, force: bool = False) -> PromotionResult:
        """Make `version` active if it does not lose to the active one on the frozen test set by more
        than the margin (`force` skips the comparison, never the validation)."""
        folder = self.version_dir(version)
        if not folder.is_dir():
            raise RegistryError(f"no version {version!r} in {self.root}")
        card = validate_folder(folder, expect_version=version)
        with self._locked():
            state = self._state()
            previous = state.active
            if previous == version:
                return PromotionResult(False, f"{version} is already active", previous)
            ok, reason = self._gate(card, previous, force)
            if not ok:
                state.refused[version] = reason
                self._write_state(state)
                log.warning("promotion of %s refused: %s", version, reason)
                result = PromotionResult(False, reason, previous)
            else:
                if previous is not None:
                    state.history = [v for v in state.history if v != previous] + [previous]
                state.history = [v for v in state.history if v != version]
                state.active = version
                state.refused.pop(version, None)
                state.retired = [v for v in state.retired if v != version]
                if previous is not None and previous not in state.retired:
                    state.retired.append(previous)
                state.promoted_at[version] = datetime.now(UTC).isoformat()
                self._write_state(state, step="promote")
                log.info("promoted model %s (previous %s): %s", version, previous, reason)
                self._prune_locked()
                result = PromotionResult(True, reason, previous)
        self.sync_catalog()
        return result

    def rollback(self) -> str:
        """Reactivate the previously active version; returns it."""
        with self._locked():
            state = self._state()
            if not state.history:
                raise RegistryError(f"no previous version to roll back to in {self.root}")
            target = state.history[-1]
            validate_folder(self.version_dir(target), expect_version=target)
            current = state.active
            state.history.pop()
            state.active = target
            state.retired = [v for v in state.retired if v != target]
            if current is not None and current not in state.retired:
                state.retired.append(current)
            state.promoted_at[target] = datetime.now(UTC).isoformat()
            self._write_state(state, step="rollback")
            log.info("rolled back from %s to %s", current, target)
        self.sync_catalog()
        return target

    def prune(self) -> list[str]:
        """Delete all but the newest `keep_last` versions; the active version and its rollback
        target always stay. Also clears leftovers of writers that were killed."""
        with self._locked():
            removed = self._prune_locked()
        if removed:
            self.sync_catalog()
        return removed

    def _prune_locked(self) -> list[str]:
        state = self._state()
        versions = self._folder_versions()
        keep = set(versions[-self.keep_last :])
        keep |= {v for v in (state.active, state.history[-1] if state.history else None) if v}
        doomed = [v for v in versions if v not in keep]
        if doomed:
            # Forget them first: a crash after this leaves unreferenced folders, never dangling names.
            gone = set(doomed)
            state.history = [v for v in state.history if v not in gone]
            state.retired = [v for v in state.retired if v not in gone]
            state.refused = {k: v for k, v in state.refused.items() if k not in gone}
            state.promoted_at = {k: v for k, v in state.promoted_at.items() if k not in gone}
            self._write_state(state)
            for version in doomed:
                os.rename(self.versions_root / version, self.trash_root / f"{version}.{uuid.uuid4().hex[:8]}")
            fsync_dir(self.versions_root)
            log.info("pruned model versions %s", ", ".join(doomed))
        self._clear_leftovers()
        return doomed

    def _clear_leftovers(self) -> None:
        for leftover in self.trash_root.iterdir():
            shutil.rmtree(leftover, ignore_errors=True)
        for tmp in self.root.glob(f".{STATE_NAME}.*.tmp"):
            tmp.unlink(missing_ok=True)
        cutoff = time.time() - STALE_STAGING_S
        for staged in self.staging_root.iterdir():
            try:
                stale = staged.stat().st_mtime < cutoff
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(staged, ignore_errors=True)

    def discard_staging(self, staging_dir: Path) -> None:
        """Remove an export that failed before `register`."""
        if staging_dir.resolve().parent == self.staging_root.resolve():
            shutil.rmtree(staging_dir, ignore_errors=True)

    # -- catalog mirror ------------------------------------------------------------------------

    def sync_catalog(self) -> None:
        """Mirror the folders into the catalog's model_versions table (the folder is the truth).
        A database failure is logged, never undoes a registry change."""
        if self.engine is None:
            return
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        from catalog.db import session_scope
        from catalog.schema import ModelVersion

        entries = {e.version: e for e in self.versions() if e.card is not None}
        try:
            with session_scope(self.engine) as session:
                rows = {row.version: row for row in session.scalars(select(ModelVersion))}
                for version, row in rows.items():
                    if version not in entries:
                        session.delete(row)
                for version, entry in entries.items():
                    row = rows.get(version)
                    if row is None:
                        row = ModelVersion(version=version)
                        session.add(row)
                    row.path = str(entry.path.resolve())
                    row.status = entry.status
                    row.parent = entry.card.parent
                    row.metrics = dict(entry.card.metrics)
                    row.created_at = entry.card.created_at
                    row.promoted_at = entry.promoted_at
        except SQLAlchemyError as exc:
            log.error("model registry %s could not be mirrored into the catalog: %s", self.root, exc)

"""The model registry: immutable versions, one active pointer, promotion, rollback, pruning, kept in
an object store (a folder in the data directory, or a bucket) so that any machine can register,
promote and load.

Keys under the registry's root::

    ACTIVE                      the pointer (JSON): the registered versions, the active one and
                                its rollback history; replaced whole, only by compare-and-swap
    versions/<version>/         model.onnx + model.json (+ whatever else the exporter wrote:
                                memory.npz, the character memory of its training faces, travels
                                with the version to every machine); never modified once registered
    reserved/<number>           a version number taken by an export (or an import) in progress
                                (create-only)

A version is registered when the pointer lists it, and active when the pointer names it, so both
steps are one conditional write of one small object: on S3 a PUT with `If-Match` (the pointer's
ETag as read), in a folder a read-compare-replace under a flock. Two writers on two machines cannot
both win; the loser re-reads and tries again. A reader resolves the pointer once and loads that
version: it sees the old model or the new one, and a writer killed at any instant leaves the
registry as it was before or after its step.

Exports are staged in a local folder (`.staging/` beside the versions, on the trainer's disk) and
uploaded before the pointer lists them. With a remote store, versions are copied on first use into
the local cache (`<data_dir>/cache/models/versions/<version>`), checked against their card; they
never change, so the copy never goes stale.

This module owns the registry's folders, reading the pointer and cards, and reserving and
registering versions; `Registry` takes promotion and rollback from `models.promotion`, and pruning,
leftovers and the catalog mirror from `models.housekeeping`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import socket
import tempfile
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalog.folder_objects import FolderObjects
from catalog.fsutil import fsync_dir, fsync_file
from catalog.object_backends import open_objects
from catalog.objects import ObjectMissing, ObjectStore
from models.card import CARD_NAME, VERSION_RE, ModelCard, parse_card, read_card
from models.errors import ModelLoadError, NoActiveModel, RegistryError
from models.housekeeping import Housekeeping
from models.pointer import Pointer, RegistryState, version_number
from models.promotion import Promotion
from models.registry_keys import RESERVED_DIR, STAGING_DIR, STATE_NAME, TRASH_DIR, VERSIONS_DIR, reserved_key
from models.versions import (
    ACTIVE,
    BROKEN,
    CANDIDATE,
    REFUSED,
    RETIRED,
    PromotionResult,
    VersionEntry,
    validate_folder,
)

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
    "version_number",
]

log = logging.getLogger(__name__)


class Registry(Promotion, Housekeeping):
    def __init__(
        self,
        root: Path | ObjectStore,
        engine: Engine | None = None,
        *,
        cache_dir: Path | None = None,
        margin: float = 0.01,
        keep_last: int = 5,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        """`root` is a folder (the embedded registry) or an object store; a remote store needs a
        `cache_dir` for local copies of versions and for staging exports. `on_step` is called with
        the name of each crash-relevant step of a write (observability, and how the crash tests
        choose the instant to kill a writer)."""
        if margin < 0:
            raise RegistryError(f"promotion margin must be >= 0, got {margin}")
        if keep_last < 2:
            raise RegistryError(
                f"keep_last must keep at least the active version and one other, got {keep_last}"
            )
        if isinstance(root, Path | str):
            self.objects: ObjectStore = FolderObjects(Path(root))
            self.local_root = Path(root)
            self.remote = False
        else:
            if cache_dir is None:
                raise RegistryError(f"a registry in {root.location} needs a local cache folder")
            self.objects = root
            self.local_root = Path(cache_dir)
            self.remote = True
        self.root = self.local_root
        self.engine = engine
        self.margin = margin
        self.keep_last = keep_last
        self.on_step = on_step
        self.pointer = Pointer(self.objects, self._legacy_versions)

    def _create_folders(self) -> None:
        """Writers create the registry's local folders when they first need them; readers create
        nothing (`namae models list` on a fresh install leaves no empty models/ behind)."""
        try:
            for sub in (self.versions_root, self.staging_root, self.trash_root):
                sub.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RegistryError(f"model registry {self.root} cannot be created: {exc.strerror}") from exc

    @classmethod
    def from_settings(cls, settings: Settings, engine: Engine | None = None, **kw: Any) -> Registry:
        kw.setdefault("margin", settings.registry.promotion_margin)
        kw.setdefault("keep_last", settings.registry.keep_last)
        if not settings.store.url:
            return cls(settings.registry_dir, engine, **kw)
        objects = open_objects(settings, "models")
        return cls(objects, engine, cache_dir=settings.cache_dir / "models", **kw)

    # -- where things are ----------------------------------------------------------------------

    @property
    def location(self) -> str:
        return self.objects.location

    @property
    def versions_root(self) -> Path:
        """Local version folders: the registry itself, or the cache of a remote one."""
        return self.local_root / VERSIONS_DIR

    @property
    def staging_root(self) -> Path:
        return self.local_root / STAGING_DIR

    @property
    def trash_root(self) -> Path:
        return self.local_root / TRASH_DIR

    @property
    def pointer_path(self) -> Path:
        """The pointer file of a folder registry (a remote one has no local pointer)."""
        if self.remote:
            raise RegistryError(f"the registry in {self.location} has no local pointer file")
        return self.local_root / STATE_NAME

    def pointer_stamp(self) -> str | None:
        """Changes whenever the pointer does: one stat of a file, or one HEAD request."""
        return self.pointer.stamp()

    def version_dir(self, version: str) -> Path:
        """The local folder of `version`; a remote registry copies it there on first use. The
        folder does not exist when the version does not."""
        version_number(version)  # refuses path tricks such as "../x"
        folder = self.versions_root / version
        if self.remote and not (folder / CARD_NAME).is_file():
            self._fetch(version, folder)
        return folder

    def _fetch(self, version: str, folder: Path) -> None:
        keys = [info.key for info in self.objects.list(f"{VERSIONS_DIR}/{version}/")]
        if f"{VERSIONS_DIR}/{version}/{CARD_NAME}" not in keys:
            return
        self.versions_root.mkdir(parents=True, exist_ok=True)
        partial = Path(tempfile.mkdtemp(dir=self.versions_root, prefix=f".{version}."))
        try:
            for key in keys:
                self.objects.download(key, partial / key.rsplit("/", 1)[-1])
            read_card(partial, verify_hash=True)  # a copy that does not match its card is no copy
            try:
                partial.rename(folder)
            except OSError:
                if not (folder / CARD_NAME).is_file():  # another thread's copy got there first
                    raise
            log.info("copied model %s from %s", version, self.location)
        finally:
            shutil.rmtree(partial, ignore_errors=True)

    def _listed_versions(self) -> list[str]:
        """Version folders with a card in the store, registered or not."""
        found = set()
        for info in self.objects.list(f"{VERSIONS_DIR}/"):
            parts = info.key.split("/")
            if len(parts) == 3 and parts[2] == CARD_NAME and VERSION_RE.match(parts[1]):
                found.add(parts[1])
        return sorted(found, key=version_number)

    def _reserved_numbers(self) -> set[int]:
        names = (info.key.rsplit("/", 1)[-1] for info in self.objects.list(f"{RESERVED_DIR}/"))
        return {int(name) for name in names if name.isdigit()}

    def _legacy_versions(self) -> list[str]:
        """The registered versions of a registry whose pointer does not list them (written before
        it did, or never written): the folders, less uploads whose export still holds its number."""
        reserved = self._reserved_numbers()
        return [v for v in self._listed_versions() if version_number(v) not in reserved]

    def _state(self) -> RegistryState:
        return self.pointer.read()

    # -- reading -------------------------------------------------------------------------------

    def active_version(self) -> str | None:
        return self._state().active

    def active_dir(self) -> Path | None:
        version = self.active_version()
        return None if version is None else self.version_dir(version)

    def require_active(self) -> tuple[str, Path]:
        version = self.active_version()
        if version is None:
            raise NoActiveModel(f"no model is active in {self.location}: train one, or promote a candidate")
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

    def _read_card(self, version: str) -> ModelCard:
        key = f"{VERSIONS_DIR}/{version}/{CARD_NAME}"
        if not self.remote:
            return read_card(self.versions_root / version, expect_version=version, verify_hash=False)
        try:
            data = self.objects.get(key)
        except ObjectMissing as exc:
            raise ModelLoadError(f"{self.location}/{VERSIONS_DIR}/{version} has no {CARD_NAME}") from exc
        return parse_card(data, f"{self.location}/{key}", expect_version=version)

    def card(self, version: str) -> ModelCard:
        version_number(version)
        if version not in (self._state().registered or []):
            raise RegistryError(f"no version {version!r} in {self.location}")
        return self._read_card(version)

    def versions(self) -> list[VersionEntry]:
        state = self._state()
        entries = []
        pruned: set[str] | None = None
        for version in state.registered or []:
            try:
                card, problem = self._read_card(version), None
            except ModelLoadError as exc:
                if pruned is None:
                    pruned = set(state.registered or []) - set(self._state().registered or [])
                if version in pruned:
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
                    path=self.versions_root / version,
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

    def _switch(self, edit: Callable[[RegistryState], tuple[bool, Any]], step: str | None = None) -> Any:
        before = (lambda: self.checkpoint(f"{step}:before_switch")) if step else None
        result = self.pointer.update(edit, before_switch=before)
        return result

    def new_version_dir(self) -> tuple[str, Path]:
        """Reserve the next version id (on every machine: a create-only marker in the store) and an
        empty local staging folder for it; write model.onnx and model.json there, then `register`."""
        taken = set(self._state().registered or [])
        taken |= set(self._listed_versions())
        numbers = {version_number(v) for v in taken} | self._reserved_numbers()
        self._create_folders()
        numbers |= {version_number(p.name) for p in self.staging_root.iterdir() if VERSION_RE.match(p.name)}
        number = max(numbers, default=0) + 1
        while True:
            claim = {"host": socket.gethostname(), "at": datetime.now(UTC).isoformat()}
            if self.objects.put_if(reserved_key(number), json.dumps(claim).encode(), expected=None):
                break
            number += 1  # another machine took it between our listing and our claim
        version = f"v{number:04d}-{datetime.now(UTC):%Y%m%dT%H%M}"
        folder = self.staging_root / version
        folder.mkdir()
        return version, folder

    def register(self, staging_dir: Path) -> ModelCard:
        """Validate a finished folder, upload it and list it in the pointer as a candidate. A folder
        outside the staging area is copied into staging first."""
        staging_dir = Path(staging_dir)
        if not staging_dir.is_dir():
            raise RegistryError(f"{staging_dir} is not a folder")
        version = staging_dir.name
        self._create_folders()
        imported = staging_dir.resolve().parent != self.staging_root.resolve()
        if imported:
            probe = read_card(staging_dir, verify_hash=False)
            version = probe.version
            copy = self.staging_root / f"{version}.import-{uuid.uuid4().hex[:8]}"
            shutil.copytree(staging_dir, copy)
            staging_dir = copy
        version_number(version)
        card = validate_folder(staging_dir, expect_version=version)
        for path in staging_dir.iterdir():
            if path.is_file():
                fsync_file(path)
        fsync_dir(staging_dir)
        self.checkpoint("register:validated")
        if version in (self._state().registered or []):
            raise RegistryError(f"version {version} is already registered in {self.location}")
        # A folder built elsewhere holds its number while it uploads, as an export does from
        # `new_version_dir`: until the pointer lists `registered`, an upload without a reservation
        # counts as a version registered before it did, and would be taken for this one already there.
        claim = {"host": socket.gethostname(), "at": datetime.now(UTC).isoformat(), "import": version}
        reserved = imported and self.objects.put_if(
            reserved_key(version_number(version)), json.dumps(claim).encode(), expected=None
        )
        try:
            # The card goes last: a folder with a card is complete, whoever looks at it.
            files = sorted(p for p in staging_dir.iterdir() if p.is_file() and p.name != CARD_NAME)
            for path in [*files, staging_dir / CARD_NAME]:
                self.objects.put_file(f"{VERSIONS_DIR}/{version}/{path.name}", path)

            def add(state: RegistryState) -> tuple[bool, None]:
                if version in (state.registered or []):
                    raise RegistryError(f"version {version} is already registered in {self.location}")
                state.registered = sorted([*(state.registered or []), version], key=version_number)
                return True, None

            self._switch(add)
        except BaseException:
            if reserved:  # give the number back: the upload, if any, is a leftover to clear
                self.objects.delete(reserved_key(version_number(version)))
            raise
        self.checkpoint("register:moved")
        log.info("registered model %s (%d labels) as a candidate", version, len(card.labels))
        self.objects.delete(reserved_key(version_number(version)))
        if self.remote:  # keep it as this machine's copy, already checked
            with contextlib.suppress(OSError):
                staging_dir.rename(self.versions_root / version)
        shutil.rmtree(staging_dir, ignore_errors=True)
        self._prune()
        self.sync_catalog()
        return card

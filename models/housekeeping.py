"""The registry's housekeeping: pruning old versions, clearing what killed writers left (uploads
never listed, stale reservations and staging folders, temp files, the trash), trimming the local
cache of a remote registry, and mirroring the pointer into the catalog's model_versions table.

Mixed into `models.registry.Registry`, whose pointer, object store and folders it uses.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import time
from pathlib import Path

from models.card import VERSION_RE
from models.pointer import RegistryState, version_number
from models.registry_keys import RESERVED_DIR, STATE_NAME, VERSIONS_DIR, reserved_key

# The registry's log, whichever of its modules writes.
log = logging.getLogger("models.registry")

STALE_STAGING_S = 6 * 3600
STALE_TEMP_S = 600


class Housekeeping:
    def prune(self) -> list[str]:
        """Delete all but the newest `keep_last` versions; the active version and its rollback
        target always stay. Also clears leftovers of writers that were killed."""
        removed = self._prune()
        if removed:
            self.sync_catalog()
        return removed

    def _prune(self) -> list[str]:
        def edit(state: RegistryState) -> tuple[bool, list[str]]:
            versions = list(state.registered or [])
            keep = set(versions[-self.keep_last :])
            keep |= {v for v in (state.active, state.history[-1] if state.history else None) if v}
            doomed = [v for v in versions if v not in keep]
            # Forget them first: a crash after this leaves unreferenced folders, never dangling names.
            state.forget(set(doomed))
            return bool(doomed), doomed

        doomed = self._switch(edit)
        for version in doomed:
            self.objects.delete_prefix(f"{VERSIONS_DIR}/{version}/")
            if self.remote:
                shutil.rmtree(self.versions_root / version, ignore_errors=True)
        if doomed:
            log.info("pruned model versions %s", ", ".join(doomed))
        self._clear_leftovers()
        return doomed

    def _clear_leftovers(self) -> None:
        """What killed writers left: uploads never listed in the pointer, stale reservations and
        staging folders, temp files, the trash."""
        now = time.time()
        reservations = {}
        for info in self.objects.list(f"{RESERVED_DIR}/"):
            if now - info.modified.timestamp() > STALE_STAGING_S:
                self.objects.delete(info.key)
            else:
                reservations[info.key.rsplit("/", 1)[-1]] = info
        registered = set(self._state().registered or [])
        uploads: set[str] = set()
        for info in self.objects.list(f"{VERSIONS_DIR}/"):
            parts = info.key.split("/")
            if len(parts) == 3 and VERSION_RE.match(parts[1]):
                uploads.add(parts[1])
            elif parts[-1].startswith(".") and now - info.modified.timestamp() > STALE_TEMP_S:
                self.objects.delete(info.key)
        for version in uploads - registered:
            if f"{version_number(version):06d}" not in reservations:  # no export is still at it
                self.objects.delete_prefix(f"{VERSIONS_DIR}/{version}/")
        if not self.remote:  # a pointer write killed before its rename
            for tmp in self.local_root.glob(f".{STATE_NAME}.*.tmp"):
                with contextlib.suppress(FileNotFoundError):
                    if tmp.stat().st_mtime < now - STALE_TEMP_S:
                        tmp.unlink()
        self.objects.sweep()
        if self.trash_root.is_dir():
            for leftover in self.trash_root.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)
        for staged in self.staging_root.iterdir() if self.staging_root.is_dir() else ():
            try:
                stale = staged.stat().st_mtime < now - STALE_STAGING_S
            except FileNotFoundError:
                continue
            if stale:
                shutil.rmtree(staged, ignore_errors=True)
        self.trim_cache()

    def trim_cache(self) -> None:
        """Drop local copies of versions no longer registered (a remote registry's cache)."""
        if not self.remote or not self.versions_root.is_dir():
            return
        registered = set(self._state().registered or [])
        for cached in self.versions_root.iterdir():
            if not cached.name.startswith(".") and cached.name not in registered:
                shutil.rmtree(cached, ignore_errors=True)

    def discard_staging(self, staging_dir: Path) -> None:
        """Remove an export that failed before `register`, and give its version number back."""
        if staging_dir.resolve().parent == self.staging_root.resolve():
            shutil.rmtree(staging_dir, ignore_errors=True)
            if VERSION_RE.match(staging_dir.name):
                self.objects.delete(reserved_key(version_number(staging_dir.name)))

    # -- catalog mirror ------------------------------------------------------------------------

    def sync_catalog(self) -> None:
        """Mirror the pointer into the catalog's model_versions table (the store is the truth).
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
                    row.path = f"{self.location}/{VERSIONS_DIR}/{version}"
                    row.status = entry.status
                    row.parent = entry.card.parent
                    row.metrics = dict(entry.card.metrics)
                    row.created_at = entry.card.created_at
                    row.promoted_at = entry.promoted_at
        except SQLAlchemyError as exc:
            log.error("model registry %s could not be mirrored into the catalog: %s", self.root, exc)

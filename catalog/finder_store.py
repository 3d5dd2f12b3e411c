"""The installed face finder's files, kept in the object store so that whichever machine trains it
(`namae train-faces`), every bot, worker and trainer finds the same one without a shared filesystem.

Keys under the store's `faces` scope (the folder `<data_dir>/faces`, or `faces/` in the bucket)::

    ACTIVE                  the pointer (JSON): the installed version, the one before it, and the
                            sha256 of each of its files; changed only by compare-and-swap
    <version>/face.onnx     a finder's files (the graph and its card), never modified once written;
    <version>/face.json     the version is named by their digests

`install_finder` uploads a folder's files under their version, then switches the pointer, then
removes the version that has just dropped out of it (the one before the previous: a reader that
resolved the pointer a moment ago is still served). `finder_folder` is what the finder's users
call: the local folder of the finder to load (with a bucket, a copy in
`<data_dir>/cache/faces/<version>`, made on first use and checked against the pointer's digests; a
version never changes, so the copy never goes stale), or None for the cascade. What the files mean
is `media.facenet`'s business.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from catalog.folder_objects import FolderObjects
from catalog.object_backends import open_objects
from catalog.objects import ObjectStore, StoreError

if TYPE_CHECKING:
    from catalog.settings import Settings

log = logging.getLogger(__name__)

SCOPE = "faces"
POINTER_KEY = "ACTIVE"
SWAP_ATTEMPTS = 50


@dataclass(frozen=True)
class InstalledFinder:
    version: str
    files: dict[str, str]  # file name -> sha256
    installed_at: str = ""
    previous: str | None = None


def _digest(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _parse(data: bytes, where: str) -> InstalledFinder:
    try:
        raw = json.loads(data)
        return InstalledFinder(
            version=str(raw["version"]),
            files={str(k): str(v) for k, v in raw["files"].items()},
            installed_at=str(raw.get("installed_at", "")),
            previous=raw.get("previous"),
        )
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise StoreError(f"{where} is not a face finder pointer: {exc}") from exc


def _objects(settings: Settings) -> ObjectStore:
    return open_objects(settings, SCOPE)


def finder_location(settings: Settings) -> str:
    """Where installed finders live, for messages (a folder path or s3://bucket/prefix/faces)."""
    return _objects(settings).location


def installed_finder(settings: Settings) -> InstalledFinder | None:
    """What the pointer names, or None when no finder was ever installed."""
    return _read_pointer(_objects(settings))


def _read_pointer(objects: ObjectStore) -> InstalledFinder | None:
    current = objects.get_versioned(POINTER_KEY)
    return None if current is None else _parse(current.data, f"{objects.location}/{POINTER_KEY}")


def install_finder(settings: Settings, folder: Path) -> InstalledFinder:
    """Upload the files in `folder` as a new version and make it the installed finder."""
    files = {path.name: _digest(path) for path in sorted(folder.iterdir()) if path.is_file()}
    files = {name: sha for name, sha in files.items() if not name.startswith(".")}
    if not files:
        raise StoreError(f"{folder} has no files to install")
    manifest = json.dumps(files, sort_keys=True).encode("utf-8")
    version = hashlib.sha256(manifest).hexdigest()[:16]
    objects = _objects(settings)
    for name in files:
        objects.put_file(f"{version}/{name}", folder / name)
    for _ in range(SWAP_ATTEMPTS):
        current = objects.get_versioned(POINTER_KEY)
        before = None if current is None else _parse(current.data, f"{objects.location}/{POINTER_KEY}")
        if before is not None and before.version == version:
            return before
        installed = InstalledFinder(
            version=version,
            files=files,
            installed_at=datetime.now(UTC).isoformat(timespec="seconds"),
            previous=before.version if before else None,
        )
        data = (json.dumps(asdict(installed), indent=2, sort_keys=True) + "\n").encode("utf-8")
        if objects.put_if(POINTER_KEY, data, expected=current.tag if current else None):
            dropped = before.previous if before else None
            if dropped and dropped not in (version, installed.previous):
                objects.delete_prefix(f"{dropped}/")
            log.info("installed face finder %s in %s", version, objects.location)
            return installed
    raise StoreError(f"{objects.location}/{POINTER_KEY} kept changing while installing a face finder")


def finder_folder(settings: Settings) -> Path | None:
    """The local folder of the trained finder to use, or None (no finder installed, or the cascade
    asked for). `faces.trained_dir`, when set, names a folder to use instead of the installed one."""
    if settings.faces.finder == "cascade":
        return None
    if settings.faces.trained_dir is not None:
        return settings.faces.trained_dir
    objects = _objects(settings)
    installed = _read_pointer(objects)
    if installed is None:
        return None
    if isinstance(objects, FolderObjects):
        return objects.root / installed.version
    return _cached_copy(objects, installed, settings.cache_dir / SCOPE)


def _cached_copy(objects: ObjectStore, installed: InstalledFinder, cache: Path) -> Path:
    target = cache / installed.version
    if all((target / name).is_file() for name in installed.files):
        return target
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(dir=cache, prefix=f".{installed.version}."))
    try:
        for name, sha in installed.files.items():
            objects.download(f"{installed.version}/{name}", partial / name)
            if _digest(partial / name) != sha:
                raise StoreError(
                    f"{objects.location}/{installed.version}/{name} does not match the sha256 "
                    f"the face finder pointer names"
                )
        try:
            partial.rename(target)
        except OSError:
            if not all((target / name).is_file() for name in installed.files):
                raise  # not another process's finished copy: a real failure
        log.info("copied face finder %s from %s", installed.version, objects.location)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target

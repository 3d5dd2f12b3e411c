"""The content-addressed image store: `<sha[:2]>/<sha[2:4]>/<sha>` in an object store (a folder in
the data directory, or a bucket), written whole, never modified.

Objects never change once written, so a local copy is always right: with a remote store, reads go
through a read-through cache in the data directory (the trainer reads every image every epoch).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.folder_objects import FolderObjects
from catalog.fsutil import atomic_write_bytes
from catalog.object_backends import open_objects
from catalog.objects import ObjectMissing, ObjectStore
from catalog.schema import Face, Image
from catalog.settings import Settings


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class StoreReport:
    orphans: list[str] = field(default_factory=list)  # files no catalog row refers to
    missing: list[str] = field(default_factory=list)  # rows whose file is gone
    corrupt: list[str] = field(default_factory=list)  # files whose bytes do not match their name
    removed: int = 0

    @property
    def clean(self) -> bool:
        return not (self.orphans or self.missing or self.corrupt)


def object_key(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise ValueError(f"{sha256!r} is not a sha256 hex digest")
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


class ImageStore:
    def __init__(self, objects: ObjectStore | Path, cache_dir: Path | None = None) -> None:
        """`objects` is an object store, or a folder path (the embedded store). `cache_dir` keeps
        local copies of a remote store's images; a folder store needs none."""
        self.objects: ObjectStore = FolderObjects(objects) if isinstance(objects, Path) else objects
        self.cache_dir = None if isinstance(self.objects, FolderObjects) else cache_dir

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageStore:
        return cls(open_objects(settings, "images"), settings.cache_dir / "images")

    @property
    def location(self) -> str:
        return self.objects.location

    def has(self, sha256: str) -> bool:
        if self.cache_dir is not None and (self.cache_dir / object_key(sha256)).is_file():
            return True
        return self.objects.exists(object_key(sha256))

    def put(self, data: bytes) -> str:
        """Store `data` once; returns its sha256. A crash leaves either no object or a whole one."""
        digest = sha256_of(data)
        key = object_key(digest)
        if not self.objects.exists(key):
            self.objects.put(key, data)
        return digest

    def read(self, sha256: str) -> bytes:
        key = object_key(sha256)
        if self.cache_dir is None:
            return self.objects.get(key)
        cached = self.cache_dir / key
        try:
            return cached.read_bytes()
        except FileNotFoundError:
            pass
        data = self.objects.get(key)
        if sha256_of(data) == sha256:  # never cache bytes that do not match their name
            cached.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(cached, data)
        return data

    def delete(self, sha256: str) -> None:
        self._delete_key(object_key(sha256))

    def _delete_key(self, key: str) -> None:
        self.objects.delete(key)
        if self.cache_dir is not None:
            (self.cache_dir / key).unlink(missing_ok=True)

    def names(self) -> list[str]:
        """Every object's name (its sha256), and leftovers of killed writers (dot names)."""
        return [info.key.rsplit("/", 1)[-1] for info in self.objects.list() if info.key.count("/") == 2]

    def check(self, engine: Engine, *, fix: bool = False, verify: bool = False) -> StoreReport:
        """Compare the store with the catalog. With `fix`, orphans and leftover temp files are
        removed (the bytes of a write whose row never committed) and rows of missing objects are
        marked not stored."""
        with session_scope(engine) as session:
            wanted = set(session.scalars(select(Image.sha256).where(Image.stored.is_(True))))
            wanted |= set(session.scalars(select(Face.crop_sha256)))
        report = StoreReport()
        present: set[str] = set()
        for info in self.objects.list():
            if info.key.count("/") != 2:
                continue
            name = info.key.rsplit("/", 1)[-1]
            if name.startswith("."):  # a folder write that never reached its rename
                report.orphans.append(info.key)
                if fix:
                    self.objects.delete(info.key)
                    report.removed += 1
                continue
            present.add(name)
            if name not in wanted:
                report.orphans.append(name)
                if fix:
                    self._delete_key(info.key)  # whatever its name: it may not even be a sha256
                    report.removed += 1
            elif verify:
                try:
                    intact = sha256_of(self.objects.get(info.key)) == name
                except ObjectMissing:
                    continue  # deleted while we checked
                if not intact:
                    report.corrupt.append(name)
        report.missing = sorted(wanted - present)
        if fix and report.missing:
            with session_scope(engine) as session:
                for image in session.scalars(select(Image).where(Image.sha256.in_(report.missing))):
                    image.stored = False
        return report

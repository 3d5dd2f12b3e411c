"""The content-addressed image store: `<root>/<sha[:2]>/<sha[2:4]>/<sha>`, written atomically."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.fsutil import atomic_write_bytes
from catalog.schema import Face, Image


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


class ImageStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def has(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    def put(self, data: bytes) -> str:
        """Store `data` once; returns its sha256. A crash leaves either no file or a whole one."""
        digest = sha256_of(data)
        target = self.path(digest)
        if target.is_file():
            return digest
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)
        return digest

    def read(self, sha256: str) -> bytes:
        return self.path(sha256).read_bytes()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def iter_files(self) -> list[Path]:
        if not self.root.exists():
            return []
        return [p for p in self.root.glob("??/??/*") if p.is_file()]

    def check(self, engine: Engine, *, fix: bool = False, verify: bool = False) -> StoreReport:
        """Compare the folder with the catalog. With `fix`, orphans and leftover temp files are
        removed (the bytes of a write whose row never committed) and rows of missing files are
        marked not stored."""
        with session_scope(engine) as session:
            wanted = set(session.scalars(select(Image.sha256).where(Image.stored.is_(True))))
            wanted |= set(session.scalars(select(Face.crop_sha256)))
        report = StoreReport()
        present: set[str] = set()
        for file in self.iter_files():
            name = file.name
            if name.startswith("."):  # a write that never reached its rename
                report.orphans.append(str(file))
                if fix:
                    file.unlink(missing_ok=True)
                    report.removed += 1
                continue
            present.add(name)
            if name not in wanted:
                report.orphans.append(name)
                if fix:
                    file.unlink(missing_ok=True)
                    report.removed += 1
            elif verify and sha256_of(file.read_bytes()) != name:
                report.corrupt.append(name)
        report.missing = sorted(wanted - present)
        if fix and report.missing:
            with session_scope(engine) as session:
                for image in session.scalars(select(Image).where(Image.sha256.in_(report.missing))):
                    image.stored = False
        return report

"""The embedded object store: objects as files under a root folder (the data directory by default).

Every `put` writes a temp file and renames it over the object; `put_if` is a read-compare-replace
under a flock on the root's `.lock`; `delete_prefix` moves a folder into `.trash/` before removing
it, so a reader never sees half a folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from catalog.fsutil import atomic_write_bytes, fsync_dir
from catalog.objects import ObjectInfo, ObjectMissing, Versioned, check_key, md5_tag

LOCK_NAME = ".lock"
TRASH_DIR = ".trash"


class FolderObjects:
    """Objects as files under `root`. `list` shows temp files a killed writer left (`.name.*.tmp`,
    so that `namae store check` can sweep them) but never `.lock` or `.trash/`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.location = str(self.root.resolve())

    def path(self, key: str) -> Path:
        return self.root / check_key(key)

    def local_path(self, key: str) -> Path | None:
        return self.path(key)

    def get(self, key: str) -> bytes:
        try:
            return self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectMissing(f"{key} is not in {self.location}") from exc

    def get_versioned(self, key: str) -> Versioned | None:
        try:
            data = self.path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError):
            return None
        return Versioned(data, md5_tag(data))

    def stamp(self, key: str) -> str | None:
        """A cheap change detector (one stat): every write renames a new file over the old one."""
        try:
            st = os.stat(self.path(key))
        except (FileNotFoundError, NotADirectoryError):
            return None
        return f"{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_size}"

    def exists(self, key: str) -> bool:
        return self.path(key).is_file()

    def put(self, key: str, data: bytes) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, data)

    def put_file(self, key: str, path: Path) -> None:
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(path, tmp)
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        fsync_dir(target.parent)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # A fresh open file description per acquisition, so that threads of one process exclude
        # each other as well as processes do.
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / LOCK_NAME).open("a+b") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def put_if(self, key: str, data: bytes, expected: str | None) -> bool:
        with self._locked():
            current = self.get_versioned(key)
            if (current.tag if current is not None else None) != expected:
                return False
            self.put(key, data)
            return True

    def download(self, key: str, path: Path) -> None:
        source = self.path(key)
        if not source.is_file():
            raise ObjectMissing(f"{key} is not in {self.location}")
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        try:
            shutil.copyfile(source, tmp)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def delete_prefix(self, prefix: str) -> None:
        """Remove a folder: renamed out of sight first, so a reader never sees half of it."""
        folder = self.path(prefix.rstrip("/"))
        if not folder.exists():
            return
        trash = self.root / TRASH_DIR
        trash.mkdir(exist_ok=True)
        doomed = trash / f"{folder.name}.{uuid.uuid4().hex[:8]}"
        os.rename(folder, doomed)
        fsync_dir(folder.parent)
        shutil.rmtree(doomed, ignore_errors=True)

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        base = self.path(prefix.rstrip("/")) if prefix else self.root
        if not base.is_dir():
            return []
        found = []
        for path in base.rglob("*"):
            relative = path.relative_to(self.root)
            if relative.parts[0] in (TRASH_DIR, LOCK_NAME):
                continue
            try:
                st = path.stat()
            except FileNotFoundError:
                continue  # removed while we listed
            if not path.is_file():
                continue
            modified = datetime.fromtimestamp(st.st_mtime, UTC)
            found.append(ObjectInfo(relative.as_posix(), st.st_size, modified))
        return sorted(found, key=lambda info: info.key)

    def sweep(self) -> None:
        """Remove folders a killed `delete_prefix` left in the trash."""
        trash = self.root / TRASH_DIR
        if trash.is_dir():
            for leftover in trash.iterdir():
                shutil.rmtree(leftover, ignore_errors=True)

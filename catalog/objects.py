"""Where shared bytes live: one small object-store interface, two backends.

`FolderObjects` keeps objects as files under a root folder (the default, embedded store: the data
directory). `S3Objects` keeps them in any S3-compatible service (AWS S3, MinIO, Ceph RGW,
Cloudflare R2) through obstore. The image store and the model registry are written against
`ObjectStore` only, so the bot, the workers and the trainer need no shared filesystem once
`store.url` names a bucket.

Keys are `/`-separated relative paths (`images/ab/cd/<sha256>`, `versions/v0003-.../model.onnx`).
Every `put` replaces an object whole: a reader sees the old bytes or the new ones. `put_if` is the
one compare-and-swap: it writes only if the object is still at the version (`tag`) the caller
read, or, with `expected=None`, only if it does not exist yet. On S3 that is a conditional PUT
(`If-Match` / `If-None-Match: *`); in a folder, a flock around read-compare-replace.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from catalog.errors import CatalogError
from catalog.fsutil import atomic_write_bytes, fsync_dir

if TYPE_CHECKING:
    from catalog.settings import Settings
    from catalog.settings_sections import StoreSettings

log = logging.getLogger(__name__)

LOCK_NAME = ".lock"
TRASH_DIR = ".trash"


class StoreError(CatalogError):
    """The object store refused or failed a request (one line, for the user)."""


class ObjectMissing(StoreError):
    pass


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True)
class Versioned:
    data: bytes
    tag: str  # what `put_if` compares: the S3 ETag, or a folder object's MD5 (the same thing)


class ObjectStore(Protocol):
    """What the image store and the registry need from a place that keeps bytes."""

    location: str  # where, for messages: a folder path or s3://bucket/prefix

    def get(self, key: str) -> bytes: ...
    def get_versioned(self, key: str) -> Versioned | None: ...
    def stamp(self, key: str) -> str | None: ...
    def exists(self, key: str) -> bool: ...
    def put(self, key: str, data: bytes) -> None: ...
    def put_file(self, key: str, path: Path) -> None: ...
    def put_if(self, key: str, data: bytes, expected: str | None) -> bool: ...
    def download(self, key: str, path: Path) -> None: ...
    def delete(self, key: str) -> None: ...
    def delete_prefix(self, prefix: str) -> None: ...
    def list(self, prefix: str = "") -> list[ObjectInfo]: ...
    def local_path(self, key: str) -> Path | None: ...


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root (`..`, absolute, empty parts)."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(part in ("", ".", "..") for part in parts):
        raise StoreError(f"{key!r} is not a valid object key")
    return key


def md5_tag(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


# --- a folder -------------------------------------------------------------------------------------


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


# --- an S3-compatible service ---------------------------------------------------------------------


class S3Objects:
    """Objects in an S3 bucket under a prefix, through obstore (the Rust object_store crate)."""

    def __init__(self, store: Any, location: str) -> None:
        self._store = store
        self.location = location

    @classmethod
    def connect(cls, settings: StoreSettings, scope: str) -> S3Objects:
        from obstore.store import S3Store

        from catalog.settings import secret_value

        bucket, prefix = parse_s3_url(settings.url or "")
        full_prefix = "/".join(part for part in (prefix, scope) if part)
        config: dict[str, Any] = {"region": settings.region}
        if settings.endpoint:
            config["endpoint"] = settings.endpoint.rstrip("/")
        config["virtual_hosted_style_request"] = settings.virtual_hosted_style
        for name in ("access_key_id", "secret_access_key", "session_token"):
            value = secret_value(getattr(settings, name))
            if value:
                config[name] = value
        client: dict[str, Any] = {
            "timeout": f"{settings.timeout_s}s",
            "connect_timeout": f"{settings.connect_timeout_s}s",
            "allow_http": bool(settings.endpoint and settings.endpoint.startswith("http://")),
        }
        try:
            store = S3Store(bucket, prefix=full_prefix or None, client_options=client, **config)
        except Exception as exc:  # obstore's configuration errors are untyped
            raise StoreError(f"the object store {settings.url} cannot be configured: {exc}") from exc
        return cls(store, f"s3://{bucket}/{full_prefix}".rstrip("/"))

    def _fail(self, what: str, key: str, exc: Exception) -> StoreError:
        import obstore.exceptions as errors

        if isinstance(exc, errors.NotFoundError | FileNotFoundError):
            return ObjectMissing(f"{key} is not in {self.location}")
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return StoreError(f"{what} {key} in {self.location} failed: {reason}")

    def local_path(self, key: str) -> Path | None:
        return None

    def get(self, key: str) -> bytes:
        import obstore

        try:
            return bytes(obstore.get(self._store, check_key(key)).bytes())
        except Exception as exc:
            raise self._fail("reading", key, exc) from exc

    def get_versioned(self, key: str) -> Versioned | None:
        import obstore

        try:
            result = obstore.get(self._store, check_key(key))
            data = bytes(result.bytes())
        except Exception as exc:
            error = self._fail("reading", key, exc)
            if isinstance(error, ObjectMissing):
                return None
            raise error from exc
        return Versioned(data, _bare_etag(result.meta["e_tag"]) or md5_tag(data))

    def stamp(self, key: str) -> str | None:
        import obstore

        try:
            meta = obstore.head(self._store, check_key(key))
        except Exception as exc:
            error = self._fail("looking up", key, exc)
            if isinstance(error, ObjectMissing):
                return None
            raise error from exc
        return _bare_etag(meta["e_tag"]) or meta["last_modified"].isoformat()

    def exists(self, key: str) -> bool:
        return self.stamp(key) is not None

    def put(self, key: str, data: bytes) -> None:
        import obstore

        try:
            obstore.put(self._store, check_key(key), data)
        except Exception as exc:
            raise self._fail("writing", key, exc) from exc

    def put_file(self, key: str, path: Path) -> None:
        import obstore

        try:
            obstore.put(self._store, check_key(key), Path(path))
        except Exception as exc:
            raise self._fail("uploading", key, exc) from exc

    def put_if(self, key: str, data: bytes, expected: str | None) -> bool:
        import obstore
        import obstore.exceptions as errors

        # The ETag goes unquoted: AWS and MinIO accept both forms, Ceph RGW only the bare one.
        mode: Any = "create" if expected is None else {"e_tag": expected}
        try:
            obstore.put(self._store, check_key(key), data, mode=mode, use_multipart=False)
        except (errors.AlreadyExistsError, errors.PreconditionError):
            return False
        except Exception as exc:
            raise self._fail("writing", key, exc) from exc
        return True

    def download(self, key: str, path: Path) -> None:
        import obstore

        try:
            result = obstore.get(self._store, check_key(key))
        except Exception as exc:
            raise self._fail("downloading", key, exc) from exc
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                for chunk in result.stream():
                    handle.write(chunk)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def delete(self, key: str) -> None:
        import obstore

        try:
            obstore.delete(self._store, check_key(key))
        except Exception as exc:
            error = self._fail("deleting", key, exc)
            if not isinstance(error, ObjectMissing):
                raise error from exc

    def delete_prefix(self, prefix: str) -> None:
        import obstore

        keys = [info.key for info in self.list(prefix)]
        if keys:
            try:
                obstore.delete(self._store, keys)
            except Exception as exc:
                raise self._fail("deleting", prefix, exc) from exc

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        import obstore

        found = []
        try:
            for batch in obstore.list(self._store, prefix=prefix or None, chunk_size=1000):
                found.extend(ObjectInfo(meta["path"], meta["size"], meta["last_modified"]) for meta in batch)
        except Exception as exc:
            raise self._fail("listing", prefix or "/", exc) from exc
        return sorted(found, key=lambda info: info.key)

    def sweep(self) -> None:
        """Nothing to sweep: an S3 PUT leaves no partial object behind."""


def _bare_etag(etag: str | None) -> str | None:
    return etag.strip('"') if etag else None


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> (bucket, "some/prefix")."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc:
        raise StoreError(f"store.url must look like s3://bucket or s3://bucket/prefix, got {url!r}")
    return parts.netloc, parts.path.strip("/")


def open_objects(settings: Settings, scope: str) -> FolderObjects | S3Objects:
    """The objects of one part of namae (`images`, `models`, `trainer`): a folder in the data
    directory, or a prefix in the bucket `store.url` names."""
    if settings.store.url:
        return S3Objects.connect(settings.store, scope)
    return FolderObjects(settings.data_dir / scope)

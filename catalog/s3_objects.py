"""Objects in any S3-compatible service (AWS S3, MinIO, Ceph RGW, Cloudflare R2) through obstore:
conditional PUTs (`If-Match` / `If-None-Match: *`) for `put_if`, failures as one-line StoreErrors.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from catalog.objects import ObjectInfo, ObjectMissing, StoreError, Versioned, check_key, md5_tag

if TYPE_CHECKING:
    from catalog.settings_sections import StoreSettings


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

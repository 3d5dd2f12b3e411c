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

This module owns the interface (`ObjectStore`, its errors and key rules); the backends are
`catalog.folder_objects` and `catalog.s3_objects`, and `catalog.object_backends.open_objects`
picks one from the settings.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from catalog.errors import CatalogError

log = logging.getLogger(__name__)


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

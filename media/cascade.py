"""The anime face cascade file: a configured local path, or a verified copy in the data directory,
downloaded once from its upstream URL through the SSRF-safe fetcher with a pinned sha256."""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import logging
import os
import tempfile
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, Final, TypeVar

from catalog.settings import DownloadSettings, FaceSettings
from media.errors import MediaError
from media.fetch import FetchError, SafeFetcher

logger = logging.getLogger(__name__)

CASCADE_FILENAME: Final = "lbpcascade_animeface.xml"
# The cascade is ~250 KB; anything much larger is not it, so a download never fills the disk.
MAX_DOWNLOAD_BYTES: Final = 16 * 1024 * 1024

T = TypeVar("T")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` to the end from synchronous code, also when this thread already runs a loop
    (the bot builds its finder inside one): then on a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _fetch(url: str, download: DownloadSettings) -> bytes:
    async with SafeFetcher(download, max_bytes=MAX_DOWNLOAD_BYTES) as fetcher:
        return (await fetcher.fetch(url, sniff=False)).data


def download_verified(url: str, sha256: str, dest: Path, download: DownloadSettings) -> Path:
    """Download `url` to `dest` if and only if its sha256 is `sha256`; never leaves a partial file."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MediaError(f"Cannot create {dest.parent} for the download: {exc.strerror or exc}.") from exc
    try:
        data = _run_sync(_fetch(url, download))
    except FetchError as exc:
        raise MediaError(f"Downloading {url} failed: {exc}.") from exc
    expected = sha256.strip().lower()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise MediaError(
            f"The download from {url} has sha256 {actual}, not the expected {expected}; it was discarded."
        )
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    temp = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temp, dest)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise MediaError(f"Cannot write {dest}: {exc.strerror or exc}.") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    logger.info("downloaded %s to %s (sha256 verified)", url, dest)
    return dest


def resolve_cascade(settings: FaceSettings, data_dir: Path, download: DownloadSettings) -> Path:
    """The cascade file to use: the configured path, else a verified copy in `data_dir`, downloaded if needed."""
    if settings.cascade_path is not None:
        path = Path(settings.cascade_path).expanduser()
        if not path.is_file():
            raise MediaError(f"The configured face cascade {path} does not exist (faces.cascade_path).")
        actual = sha256_file(path)
        if actual != settings.cascade_sha256.lower():
            # A deliberately different cascade is allowed; say so, since results will differ.
            logger.warning(
                "face cascade %s has sha256 %s, not the pinned %s; using it as configured",
                path,
                actual,
                settings.cascade_sha256,
            )
        return path
    path = Path(data_dir) / CASCADE_FILENAME
    if path.is_file():
        if sha256_file(path) == settings.cascade_sha256.lower():
            return path
        logger.warning("face cascade %s does not match its pinned sha256; downloading it again", path)
    try:
        return download_verified(settings.cascade_url, settings.cascade_sha256, path, download)
    except MediaError as exc:
        # Offline machines meet this first: say where a copy can go instead of the download.
        raise MediaError(
            f"{exc} Put the cascade at {path}, or name a copy with NAMAE_FACES__CASCADE_PATH (faces.cascade_path)."
        ) from exc

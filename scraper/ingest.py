"""The cleaning path every image takes into the catalog, from Reddit or from a folder.

bytes -> decode (bounded, `media.decode`) -> exact dedup (sha256) -> near dedup (loose pHash/dHash
candidates incl. sub-crops, verified by thumbnail NCC; across all characters) -> face crops -> one transaction.

The catalog decision and its transaction are `scraper.decisions`; the values passed along are
`scraper.outcomes`. Decoding, hashing and face detection run in threads; decisions and commits are
serialised so that the near-duplicate index always reflects every committed image.
"""

from __future__ import annotations

import asyncio
import os
import threading

import numpy as np
from sqlalchemy import Engine

from catalog.images import FaceCrop
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from media.decode import ImageRejected, decode_image
from media.encode import encode_png
from media.faces import FaceDetector
from media.fetch import FetchError, SafeFetcher
from media.hashes import fingerprint, perceptual_hashes
from media.trailing import without_trailing_data
from scraper.candidates import ImageCandidate, ImageOrigin
from scraper.decisions import IngestDecisions
from scraper.dedup import DHASH_THRESHOLD, PHASH_THRESHOLD, HashIndex
from scraper.outcomes import IngestOutcome, OutcomeKind, Prepared, unfetched_key
from scraper.rejections import Retry

# Fetch errors that say something final about the URL; the rest (timeouts, 5xx) may heal.
FETCH_VERDICTS = {
    "too_large",
    "not_an_image",
    "blocked_address",
    "bad_url",
    "bad_redirect",
    "host_not_allowed",
    "too_many_redirects",
}


def is_verdict(error: FetchError) -> bool:
    if error.reason in FETCH_VERDICTS:
        return True
    return error.reason.startswith("http_4") and error.reason != "http_429"


class Ingestor(IngestDecisions):
    """Turns bytes (or a candidate URL) into catalog rows. One per run; not shared across processes,
    though two processes ingesting into one catalog stay correct (unique sha256 and provenance)."""

    def __init__(
        self,
        engine: Engine,
        store: ImageStore,
        settings: Settings,
        detector: FaceDetector,
        index: HashIndex,
        *,
        cpu_workers: int | None = None,
        phash_threshold: int = PHASH_THRESHOLD,
        dhash_threshold: int = DHASH_THRESHOLD,
    ) -> None:
        self.engine = engine
        self.store = store
        self.settings = settings
        self.detector = detector
        self.index = index
        self.phash_threshold = phash_threshold
        self.dhash_threshold = dhash_threshold
        self._cpu = asyncio.Semaphore(cpu_workers or max(1, min(4, os.cpu_count() or 1)))
        self._commit_lock = asyncio.Lock()
        # Decisions read and extend the in-memory index: one at a time, also when a cancelled
        # task's thread is still finishing its commit while the next one starts.
        self._decision_lock = threading.Lock()
        self._unstore: list[str] = []  # bytes of images a better copy replaced, removed after the commit

    # ---- CPU work -------------------------------------------------------------------------------

    def prepare(self, data: bytes) -> Prepared:
        """Decode, hash and find faces; a refused file comes back with `rejection` set.

        The decoder judges the bytes as received (a refusal is keyed by them); an accepted file is hashed
        and stored as the image alone, without anything appended after its end (a ZIP behind a JPEG)."""
        try:
            decoded = decode_image(data, self.settings.images)
        except ImageRejected as exc:
            return Prepared(sha256=sha256_of(data), data=data, rejection=(exc.reason, exc.detail))
        data = without_trailing_data(data)
        phash, dhash = perceptual_hashes(decoded.rgb)
        return Prepared(
            sha256=sha256_of(data),
            data=data,
            format=decoded.format,
            width=decoded.width,
            height=decoded.height,
            phash=phash,
            dhash=dhash,
            fingerprint=fingerprint(decoded.rgb, phash, dhash),
            faces=self._faces(decoded.rgb),
        )

    def _faces(self, rgb: np.ndarray) -> list[FaceCrop]:
        size = self.settings.faces.crop_size
        # FaceDetector is thread-safe (a classifier per thread)
        return [
            FaceCrop.of(box.rect, encode_png(self.detector.crop(rgb, box, size)))
            for box in self.detector.detect(rgb)
        ]

    # ---- entry points ---------------------------------------------------------------------------

    def ingest_bytes(self, data: bytes, origin: ImageOrigin) -> IngestOutcome:
        """The synchronous path (folder import): skip known provenance, then prepare and commit."""
        if self.is_known(origin):
            return IngestOutcome(OutcomeKind.known)
        sha = sha256_of(without_trailing_data(data))  # the key `prepare` gives the stored bytes
        if self.has_sha256(sha):
            return self.commit_existing(sha, origin)
        return self.commit(self.prepare(data), origin)

    async def fetch_and_prepare(
        self, candidate: ImageCandidate | ImageOrigin, fetcher: SafeFetcher
    ) -> Prepared | IngestOutcome | str:
        """Everything before the catalog decision: a `Prepared` to commit, the sha256 of bytes the
        catalog already has (a `str`), or a final outcome (known post, transient error)."""
        origin = candidate if isinstance(candidate, ImageOrigin) else ImageOrigin.from_candidate(candidate)
        if await asyncio.to_thread(self.is_known, origin):
            return IngestOutcome(OutcomeKind.known)
        same_url = await asyncio.to_thread(self.image_for_url, origin.url)
        if same_url is not None:
            return same_url
        return await self._download(origin, fetcher, reuse_known_bytes=True)

    async def _download(
        self, origin: ImageOrigin, fetcher: SafeFetcher, *, reuse_known_bytes: bool = False
    ) -> Prepared | IngestOutcome | str:
        """Fetch and prepare `origin.url`: a verdict on the URL comes back as a rejection, a
        transient failure as an error outcome; with `reuse_known_bytes`, bytes the catalog has
        already come back as their sha256."""
        try:
            # The decoder sniffs and caps on its own terms, so that its reason is the recorded one.
            fetched = await fetcher.fetch(origin.url, sniff=False, max_bytes=self.settings.images.max_bytes)
        except FetchError as exc:
            if is_verdict(exc):
                return Prepared(
                    sha256=unfetched_key(origin.url),
                    data=b"",
                    rejection=(exc.reason, exc.detail),
                )
            return IngestOutcome(OutcomeKind.error, reason=exc.reason, detail=exc.detail)
        sha = sha256_of(without_trailing_data(fetched.data))  # the key `prepare` gives the stored bytes
        if reuse_known_bytes and await asyncio.to_thread(self.has_sha256, sha):
            return sha
        async with self._cpu:
            return await asyncio.to_thread(self.prepare, fetched.data)

    async def retry_rejection(self, retry: Retry, fetcher: SafeFetcher) -> IngestOutcome:
        """Fetch a rejected image again under the current settings and put the new decision in
        place of the rejection, in one transaction; a transient failure leaves it as it was."""
        first, *others = retry.origins
        prepared = await self._download(first, fetcher)
        if isinstance(prepared, IngestOutcome):
            return prepared
        async with self._commit_lock:
            return await asyncio.to_thread(self._retry_commit, prepared, first, retry.image_id, others)

    def _retry_commit(
        self, prepared: Prepared, origin: ImageOrigin, replacing: int, others: list[ImageOrigin]
    ) -> IngestOutcome:
        with self._decision_lock:
            return self._commit(prepared, origin, replacing=replacing, also_from=others)

    async def commit_async(
        self, prepared: Prepared | IngestOutcome | str, origin: ImageOrigin
    ) -> IngestOutcome:
        if isinstance(prepared, IngestOutcome):
            return prepared
        async with self._commit_lock:
            if isinstance(prepared, str):
                return await asyncio.to_thread(self.commit_existing, prepared, origin)
            return await asyncio.to_thread(self.commit, prepared, origin)

    async def ingest(self, candidate: ImageCandidate | ImageOrigin, fetcher: SafeFetcher) -> IngestOutcome:
        origin = candidate if isinstance(candidate, ImageOrigin) else ImageOrigin.from_candidate(candidate)
        prepared = await self.fetch_and_prepare(origin, fetcher)
        return await self.commit_async(prepared, origin)

"""The cleaning path every image takes into the catalog, from Reddit or from a folder.

bytes -> decode (bounded, `media.decode`) -> exact dedup (sha256) -> near dedup (loose pHash/dHash
candidates incl. sub-crops, verified by thumbnail NCC; across all characters) -> face crops -> one transaction.

Crash consistency: the image's bytes and its face crops are written to the content-addressed
store before the rows that name them are committed, in one transaction per image (through
`catalog.images`, the write path the bot's recorded predictions share). A crash leaves
at worst an orphan file (`ImageStore.check(fix=True)` removes it), never a row without its file.
Provenance is unique per (image, source, post, url), so processing the same post twice adds
nothing. Decoding, hashing and face detection run in threads; decisions and commits are
serialised so that the near-duplicate index always reflects every committed image.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.images import FaceCrop, PictureFacts, add_face, add_image, store_files
from catalog.schema import (
    LABEL_TRUST,
    Image,
    ImageStatus,
    Label,
    LabelOrigin,
    Provenance,
    Review,
)
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from media.decode import ImageRejected, decode_image
from media.encode import encode_png
from media.faces import FaceDetector
from media.fetch import FetchError, SafeFetcher
from media.hashes import Fingerprint, crop_hashes_to_text, fingerprint, int_to_hash, perceptual_hashes
from media.trailing import without_trailing_data
from scraper.candidates import ImageCandidate, ImageOrigin
from scraper.claims import (
    claim,
    demote,
    near_duplicate_review,
    representative,
    review_conflicts,
)
from scraper.dedup import DHASH_THRESHOLD, PHASH_THRESHOLD, HashIndex, Match
from scraper.rejections import Retry, reject_code, settings_key

log = logging.getLogger(__name__)

REVIEW_MULTIPLE_FACES = "multiple_faces"


class OutcomeKind(enum.StrEnum):
    new = "new"  # stored, status accepted or review
    duplicate = "duplicate"  # the same bytes were already in the catalog: provenance added
    near_duplicate = "near_duplicate"  # a near copy of an image of the same character: not stored
    review = "review"  # a near copy of another character's image: stored, queued for a moderator
    rejected = "rejected"  # not an acceptable image; the reason is recorded
    known = "known"  # this post's URL was processed before: nothing fetched
    error = "error"  # a transient failure (timeout, 5xx): nothing written, tried again next run


@dataclass(frozen=True)
class IngestOutcome:
    kind: OutcomeKind
    image_id: int | None = None
    sha256: str | None = None
    reason: str | None = None  # rejection or error code
    detail: str | None = None
    faces: int = 0
    reviews: int = 0  # Review rows this outcome wrote for the moderators' queue

    @property
    def flagged(self) -> bool:
        return self.reviews > 0


@dataclass
class Prepared:
    """The CPU-heavy part of ingesting one file, computed off the event loop."""

    sha256: str
    data: bytes
    rejection: tuple[str, str] | None = None
    format: str | None = None
    width: int | None = None
    height: int | None = None
    phash: int = 0
    dhash: int = 0
    fingerprint: Fingerprint | None = None  # sub-crop hashes + signature, for crop-tolerant dedup
    faces: list[FaceCrop] = field(default_factory=list)

    @property
    def facts(self) -> PictureFacts:
        return PictureFacts(
            sha256=self.sha256,
            width=self.width,
            height=self.height,
            format=self.format,
            phash=int_to_hash(self.phash),
            dhash=int_to_hash(self.dhash),
            crop_hashes=crop_hashes_to_text(self.fingerprint.crops) if self.fingerprint else None,
            signature=self.fingerprint.signature if self.fingerprint else None,
        )


def unfetched_key(url: str) -> str:
    """The `sha256` of a rejection whose bytes never arrived whole (too large, 404, blocked):
    a digest of the URL in a namespace no file's digest can collide with in practice."""
    return hashlib.sha256(b"namae-unfetched\0" + url.encode()).hexdigest()


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


class Ingestor:
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

    # ---- catalog writes -------------------------------------------------------------------------

    def is_known(self, origin: ImageOrigin) -> bool:
        """True when this exact (source, post, url) was ingested before: nothing to fetch."""
        with session_scope(self.engine) as session:
            return _provenance_exists(session, origin, image_id=None)

    def image_for_url(self, url: str) -> str | None:
        """The sha256 of an image already fetched from `url` (by any source), to skip the download."""
        with session_scope(self.engine) as session:
            return session.scalar(
                select(Image.sha256)
                .join(Provenance, Provenance.image_id == Image.id)
                .where(Provenance.url == url)
            )

    def has_sha256(self, sha: str) -> bool:
        with session_scope(self.engine) as session:
            return session.scalar(select(Image.id).where(Image.sha256 == sha)) is not None

    def commit(self, prepared: Prepared, origin: ImageOrigin) -> IngestOutcome:
        """Decide and write one image; safe to repeat (a second call adds nothing)."""
        with self._decision_lock:
            try:
                return self._commit(prepared, origin)
            except IntegrityError:
                # Another process committed the same sha256 or provenance between our read and write.
                log.info("concurrent insert of %s; recording as a duplicate", prepared.sha256[:12])
                return self._commit(prepared, origin)

    def commit_existing(self, sha: str, origin: ImageOrigin) -> IngestOutcome:
        """Provenance for bytes the catalog already has (found by sha256 or by URL)."""
        with self._decision_lock, session_scope(self.engine) as session:
            existing = session.scalar(select(Image).where(Image.sha256 == sha))
            if existing is None:
                raise LookupError(f"no image {sha}")
            return self._same_bytes(session, existing, origin)

    def reject_unfetched(self, origin: ImageOrigin, error: FetchError) -> IngestOutcome:
        """Record a URL whose bytes were refused before they arrived whole."""
        reason = "too_large" if error.reason == "too_large" else error.reason
        prepared = Prepared(sha256=unfetched_key(origin.url), data=b"", rejection=(reason, error.detail))
        return self.commit(prepared, origin)

    def _commit(
        self,
        prepared: Prepared,
        origin: ImageOrigin,
        *,
        replacing: int | None = None,
        also_from: Sequence[ImageOrigin] = (),
    ) -> IngestOutcome:
        """One transaction: the decision for `origin` (in place of the rejection `replacing`, when
        given), and the other places the same image was found (`also_from`)."""
        added: int | None = None
        self._unstore = []
        with session_scope(self.engine) as session:
            if replacing is not None and (old := session.get(Image, replacing)) is not None:
                session.delete(old)  # its provenance goes with it and is written again below
                session.flush()
            existing = session.scalar(select(Image).where(Image.sha256 == prepared.sha256))
            if existing is not None:
                outcome = self._same_bytes(session, existing, origin)
            elif prepared.rejection is not None:
                outcome = self._rejected(session, prepared, origin)
            else:
                outcome = self._decide(session, prepared, origin)
                if outcome.kind in (OutcomeKind.new, OutcomeKind.review):
                    added = outcome.image_id or 0
            if also_from and outcome.image_id is not None:
                image = session.get_one(Image, outcome.image_id)
                for other in also_from:
                    more = self._same_bytes(session, image, other)
                    outcome = replace(outcome, reviews=outcome.reviews + more.reviews)
        for sha in self._unstore:  # after the commit: a crash leaves an orphan, never a missing file
            self.store.delete(sha)
        # Only once the transaction is committed may later images be compared against this one.
        if added is not None:
            if prepared.fingerprint is not None:
                self.index.add_fingerprint(added, prepared.fingerprint)
            else:
                self.index.add(added, prepared.phash, prepared.dhash)
        return outcome

    def _rejected(self, session: Session, prepared: Prepared, origin: ImageOrigin) -> IngestOutcome:
        code, detail = prepared.rejection or ("corrupt", "")
        image = Image(
            sha256=prepared.sha256,
            status=ImageStatus.rejected,
            reject_reason=f"{code}: {detail}"[:2000],
            reject_settings=settings_key(code, self.settings),
            stored=False,
        )
        session.add(image)
        session.flush()
        session.add(origin.provenance(image.id))
        return IngestOutcome(OutcomeKind.rejected, image.id, prepared.sha256, code, detail)

    def _decide(self, session: Session, prepared: Prepared, origin: ImageOrigin) -> IngestOutcome:
        other: Image | None = None  # the kept near copy of another character's picture
        for match in self._near_duplicates(session, prepared):
            kept = representative(session, match.image_id)
            if _resolved_character(session, kept.id) != origin.character_id:
                other = other or kept
                continue
            if kept.status == ImageStatus.accepted and self._quality(prepared) > self._stored_quality(kept):
                return self._take_over(session, prepared, origin, kept)
            image = add_image(
                session, prepared.facts, ImageStatus.duplicate, stored=False, duplicate_of=kept.id
            )
            session.add(origin.provenance(image.id))
            conflict = claim(session, kept, origin.character_id, origin.origin)
            reviews = review_conflicts(session, kept, conflict)
            return IngestOutcome(OutcomeKind.near_duplicate, image.id, prepared.sha256, reviews=reviews)
        return self._keep(session, prepared, origin, other)

    def _quality(self, prepared: Prepared) -> tuple[int, int, str]:
        return ((prepared.width or 0) * (prepared.height or 0), len(prepared.data), prepared.sha256)

    def _stored_quality(self, image: Image) -> tuple[int, int, str]:
        size = len(self.store.read(image.sha256)) if image.stored else 0
        return ((image.width or 0) * (image.height or 0), size, image.sha256)

    def _take_over(
        self, session: Session, prepared: Prepared, origin: ImageOrigin, old: Image
    ) -> IngestOutcome:
        """`prepared` is a better copy of the kept `old`: it is kept in its place, with old's claims."""
        outcome = self._keep(session, prepared, origin, None)
        new = session.get_one(Image, outcome.image_id)
        dropped = [old.sha256, *(face.crop_sha256 for face in old.faces)]
        conflict: set[int] = set()
        for character_id, label_origin in demote(session, old, new):
            conflict |= claim(session, new, character_id, label_origin)
        self._unstore.extend(dropped)
        return replace(outcome, reviews=outcome.reviews + review_conflicts(session, new, conflict))

    def _keep(
        self, session: Session, prepared: Prepared, origin: ImageOrigin, other: Image | None
    ) -> IngestOutcome:
        """Store the image as kept; `other`, another character's near copy, sends both to review."""
        # Bytes and crops reach the store before the rows that name them commit.
        store_files(self.store, prepared.data, prepared.faces)
        several = len(prepared.faces) > 1
        status = ImageStatus.review if (other is not None or several) else ImageStatus.accepted
        image = add_image(session, prepared.facts, status, stored=True, has_face=bool(prepared.faces))
        session.add(origin.provenance(image.id))
        self._label(session, image.id, None, origin)
        for number, face in enumerate(prepared.faces):
            row = add_face(session, image, face, index=number, needs_review=several)
            if not several:
                self._label(session, image.id, row.id, origin)
        reviews = 0
        if several:
            session.add(
                Review(
                    kind=REVIEW_MULTIPLE_FACES,
                    reason=f"{len(prepared.faces)} faces; the source does not say which one is the character",
                    image_id=image.id,
                    character_id=origin.character_id,
                )
            )
            reviews += 1
        if other is None:
            return IngestOutcome(
                OutcomeKind.new, image.id, prepared.sha256, faces=len(prepared.faces), reviews=reviews
            )
        other_character = _resolved_character(session, other.id)
        reviews += near_duplicate_review(session, image, origin.character_id, other_character)
        reviews += near_duplicate_review(session, other, other_character, origin.character_id)
        return IngestOutcome(
            OutcomeKind.review, image.id, prepared.sha256, faces=len(prepared.faces), reviews=reviews
        )

    def _near_duplicates(self, session: Session, prepared: Prepared) -> list[Match]:
        """Loose hash candidates (crop-tolerant), each verified against its stored signature."""
        if prepared.fingerprint is None:
            return self.index.near_pair(
                prepared.phash, prepared.dhash, self.phash_threshold, self.dhash_threshold
            )

        def signature_of(image_id: int) -> bytes | None:
            return session.scalar(select(Image.signature).where(Image.id == image_id))

        return self.index.find(prepared.fingerprint, signature_of)

    def _same_bytes(self, session: Session, existing: Image, origin: ImageOrigin) -> IngestOutcome:
        """Bytes the catalog already has: add provenance and the claim; a claim for another
        character sends the picture to review (scraper.claims)."""
        if not _provenance_exists(session, origin, image_id=existing.id):
            session.add(origin.provenance(existing.id))
        if existing.status == ImageStatus.rejected:
            code = reject_code(existing.reject_reason)
            return IngestOutcome(
                OutcomeKind.rejected, existing.id, existing.sha256, code, existing.reject_reason
            )
        reviews = 0
        if origin.character_id is not None:
            kept = representative(session, existing.id)
            conflict = claim(session, kept, origin.character_id, origin.origin)
            reviews = review_conflicts(session, kept, conflict | {origin.character_id})
        return IngestOutcome(OutcomeKind.duplicate, existing.id, existing.sha256, reviews=reviews)

    @staticmethod
    def _label(session: Session, image_id: int, face_id: int | None, origin: ImageOrigin) -> None:
        session.add(
            Label(
                image_id=image_id,
                face_id=face_id,
                character_id=origin.character_id,
                origin=origin.origin,
                weight=LABEL_TRUST[origin.origin],
            )
        )

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


def _provenance_exists(session: Session, origin: ImageOrigin, *, image_id: int | None) -> bool:
    query = select(Provenance.id).where(Provenance.url == origin.url)
    query = query.where(
        Provenance.source_id.is_(None)
        if origin.source_id is None
        else Provenance.source_id == origin.source_id
    )
    query = query.where(
        Provenance.post_id.is_(None) if origin.post_id is None else Provenance.post_id == origin.post_id
    )
    if image_id is not None:
        query = query.where(Provenance.image_id == image_id)
    return session.scalar(query.limit(1)) is not None


def _resolved_character(session: Session, image_id: int) -> int | None:
    """The character of an image's most trusted image-level label (None when unlabelled)."""
    labels = session.execute(
        select(Label.character_id, Label.origin).where(Label.image_id == image_id, Label.face_id.is_(None))
    ).all()
    if not labels:
        return None
    ranked = list(LabelOrigin)
    return max(labels, key=lambda row: ranked.index(LabelOrigin(row.origin))).character_id

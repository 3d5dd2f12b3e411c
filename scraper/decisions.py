"""The catalog side of ingesting: the decision for one prepared image (new, duplicate, near duplicate,
review, rejected) and the one transaction that writes it, as methods `scraper.ingest.Ingestor` inherits.

Crash consistency: the image's bytes and its face crops are written to the content-addressed
store before the rows that name them are committed, in one transaction per image (through
`catalog.images`, the write path the bot's recorded predictions share). A crash leaves
at worst an orphan file (`ImageStore.check(fix=True)` removes it), never a row without its file.
Provenance is unique per (image, source, post, url), so processing the same post twice adds
nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import replace

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from catalog.db import session_scope
from catalog.images import add_face, add_image, store_files
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
from catalog.store import ImageStore
from media.fetch import FetchError
from scraper.candidates import ImageOrigin
from scraper.claims import (
    claim,
    demote,
    near_duplicate_review,
    representative,
    review_conflicts,
)
from scraper.dedup import HashIndex, Match
from scraper.outcomes import IngestOutcome, OutcomeKind, Prepared, unfetched_key
from scraper.rejections import reject_code, settings_key

log = logging.getLogger(__name__)

REVIEW_MULTIPLE_FACES = "multiple_faces"


class IngestDecisions:
    """Catalog reads and writes of an `Ingestor`: what it knows, and each image's decision and commit."""

    engine: Engine
    store: ImageStore
    settings: Settings
    index: HashIndex
    phash_threshold: int
    dhash_threshold: int
    _decision_lock: threading.Lock
    _unstore: list[str]

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

"""Near-duplicate lookup over 64-bit perceptual hashes (`media.hashes`) without comparing all pairs.

Multi-index hashing (Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing"):
the 64 bits are cut into `CHUNKS` chunks of 16 bits. If two hashes differ in at most `r` bits,
then by pigeonhole at least one chunk differs in at most `r // CHUNKS` bits, so probing each
chunk's table with every value within that radius finds every true neighbour; the candidates
are then checked exactly, vectorised with numpy. At 1M hashes and r <= 11 a lookup probes
4 x 137 buckets
(16 + 120 + 1 values per chunk), gathered and checked with a handful of numpy operations.

The index holds every image whose bytes are kept (accepted and review), across all characters,
and is rebuilt from the catalog at the start of a run (`load`).

Crops. A copy that keeps 90-97% of a picture at a random offset moves 8x8 hashes as far as another
portrait of the same character is (2-24 bits), so hash distance alone cannot decide. Matching is
therefore loose retrieval + strict verification (`HashIndex.find`):
- retrieval: besides the whole-image hashes, every image has the hashes of five sub-crops (four
  corners and the centre, each keeping `SUBCROP_KEEP` of the side). A query's whole hashes are
  looked up among whole and sub-crop hashes (the query is a crop of a stored picture), and the
  query's sub-crop hashes among whole hashes (a stored crop of the query), all within
  `CANDIDATE_THRESHOLD` bits on both pHash and dHash;
- verification: each candidate's 64x64 greyscale `signature` (persisted in the catalog) is aligned
  to the query's over a grid of crops (scale `VERIFY_KEEPS`, one-pixel offsets, both directions)
  and accepted only when the normalized cross-correlation of the pixels AND of their gradients are
  both high (`VERIFY_MIN_NCC`, `VERIFY_MIN_GRADIENT_NCC`). Distinct portraits of one character
  differ in pose and background, which the gradients see even when the hashes do not.

Mirrors. A horizontally flipped repost changes every hash. The query's fingerprint carries its
mirror's (`Fingerprint.mirror`), which is retrieved and verified the same way; only a picture's own
hashes are stored, so the index does not grow and a lookup costs two retrievals.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache

import numpy as np
from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus
from media.hashes import (
    VERIFY_MIN_GRADIENT_NCC,
    VERIFY_MIN_NCC,
    Fingerprint,
    crop_hashes_from_text,
    hash_to_int,
    similarity,
)

HASH_BITS = 64
CHUNKS = 4
CHUNK_BITS = HASH_BITS // CHUNKS
CHUNK_MASK = (1 << CHUNK_BITS) - 1
INDEXED_STATUSES = (ImageStatus.accepted, ImageStatus.review)

# Thresholds measured on sandbox.characters near-duplicates (see tests/scraper/test_dedup_synthetic.py):
# a near-duplicate needs BOTH distances within their threshold. On generate_dataset's planted copies
# (8 characters x 20 portraits + 60 copies, seeds 7-11) 10/12 merged 14 of 800 distinct portraits
# (1.75%, two portraits of one character can be 2 bits apart in pHash); 8/8 merges 2 (0.25%) and
# still finds every re-encoded, resized, watermarked and recoloured copy (240/240). Crops (keeping
# 90-97% at a random offset) move the 8x8 hashes 2-24 bits: no threshold finds most of them
# without merging distinct portraits (8/8 finds 20 of 60).
PHASH_THRESHOLD = 8
DHASH_THRESHOLD = 8

# Crop-tolerant retrieval (sub-crop hashes: media.hashes). 11 bits keeps the multi-index probe at 2
# bits a chunk (a 12-bit radius would scan every row) and still retrieves all but a few generated
# crops, which the other direction or the whole hash catches.
CANDIDATE_THRESHOLD = 11
# dHash is only checked on what the pHash probe returns, so its radius costs nothing to widen: two
# of the 60 crops above sit 8 and 6 bits from a sub-crop in pHash but 17 and 15 in dHash.
CANDIDATE_DHASH_THRESHOLD = 18


@cache
def _flip_masks(radius: int) -> tuple[int, ...]:
    """Every CHUNK_BITS-bit mask with at most `radius` bits set, fewest bits first."""
    masks = [0]
    for bits in range(1, radius + 1):
        for positions in itertools.combinations(range(CHUNK_BITS), bits):
            masks.append(sum(1 << p for p in positions))
    return tuple(masks)


@cache
def _mask_array(radius: int) -> np.ndarray:
    return np.asarray(_flip_masks(radius), dtype=np.int64)


@dataclass(frozen=True)
class Match:
    image_id: int
    phash_distance: int
    dhash_distance: int
    similarity: float | None = None  # pixel NCC at the best alignment, once verified (`find`)
    mirrored: bool = False  # found through the query's mirror image

    @property
    def total(self) -> int:
        return self.phash_distance + self.dhash_distance


class HashIndex:
    """A multi-index over 64-bit hashes; `near` returns exactly what a brute-force scan would.

    Rows live in growing numpy arrays. The chunk tables are frozen CSR arrays (row numbers sorted
    by chunk value, plus offsets), rebuilt when the rows added since the last build (scanned
    directly until then) outgrow `min_pending` or an eighth of the frozen part.
    """

    def __init__(self, *, min_pending: int = 4096) -> None:
        self.min_pending = min_pending
        self._ids = np.zeros(1024, dtype=np.int64)
        self._hashes = np.zeros(1024, dtype=np.uint64)
        self._extra = np.zeros(1024, dtype=np.uint64)  # a second hash (dHash) checked on candidates
        self._size = 0
        self._frozen = 0
        self._order = np.zeros(0, dtype=np.int64)
        self._bucketed = np.zeros(0, dtype=np.uint64)
        self._offsets = np.zeros((CHUNKS, CHUNK_MASK + 2), dtype=np.int64)
        # The sub-crop hashes of the indexed images (several rows per image), created on first use.
        self._crops: HashIndex | None = None

    def __len__(self) -> int:
        """The number of whole-image rows (sub-crop rows are not counted)."""
        return self._size

    def add_crops(self, image_id: int, crops: Iterable[tuple[int, int]]) -> None:
        """The (pHash, dHash) of an image's sub-crops, retrieved by `candidates` for cropped copies."""
        if self._crops is None:
            self._crops = HashIndex(min_pending=self.min_pending)
        for phash, dhash in crops:
            self._crops.add(image_id, phash, dhash)

    def extend_crops(self, rows: Iterable[tuple[int, int, int]]) -> None:
        """Many (image id, pHash, dHash) sub-crop rows at once (loading the catalog)."""
        if self._crops is None:
            self._crops = HashIndex(min_pending=self.min_pending)
        self._crops.extend(rows)

    def add_fingerprint(self, image_id: int, fingerprint: Fingerprint) -> None:
        self.add(image_id, fingerprint.phash, fingerprint.dhash)
        self.add_crops(image_id, fingerprint.crops)

    def candidates(
        self,
        fingerprint: Fingerprint,
        radius: int = CANDIDATE_THRESHOLD,
        dhash_radius: int = CANDIDATE_DHASH_THRESHOLD,
    ) -> list[Match]:
        """Images that may be the same picture as `fingerprint`, cropped or not, within `radius`
        bits of pHash and `dhash_radius` of dHash for some pairing (whole-whole, whole-sub-crop,
        sub-crop-whole); one Match per image with its nearest pairing, nearest first. Loose on
        purpose: see `find`."""
        best: dict[int, Match] = {}

        def keep(matches: list[Match]) -> None:
            for match in matches:
                known = best.get(match.image_id)
                if known is None or match.total < known.total:
                    best[match.image_id] = match

        keep(self.near_pair(fingerprint.phash, fingerprint.dhash, radius, dhash_radius))
        if self._crops is not None:
            keep(self._crops.near_pair(fingerprint.phash, fingerprint.dhash, radius, dhash_radius))
        if fingerprint.crops:
            # The five sub-crop queries probe this index in one vectorised pass.
            phashes, dhashes = zip(*fingerprint.crops, strict=True)
            rows, primary, secondary = self._within_many(list(phashes), list(dhashes), radius, dhash_radius)
            keep(
                [
                    Match(image_id, p, d)
                    for image_id, p, d in zip(
                        self._ids[rows].tolist(), primary.tolist(), secondary.tolist(), strict=True
                    )
                ]
            )
        return sorted(best.values(), key=lambda m: (m.total, m.image_id))

    def find(self, fingerprint: Fingerprint, signature_of: Callable[[int], bytes | None]) -> list[Match]:
        """Near duplicates of `fingerprint` (or of its mirror image, when it carries one), most
        similar first: hash candidates whose stored signature (`signature_of(image_id)`) verifies
        as the same picture. A candidate without a signature is kept only within the whole-image
        thresholds (what hashes alone can tell), after the verified ones."""
        verified: dict[int, Match] = {}
        unverified: dict[int, Match] = {}
        queries = [(fingerprint, False)]
        if fingerprint.mirror is not None:
            queries.append((fingerprint.mirror, True))
        for query, mirrored in queries:
            for match in self.candidates(query):
                stored = signature_of(match.image_id)
                if stored is None:
                    whole = (
                        match.phash_distance <= PHASH_THRESHOLD and match.dhash_distance <= DHASH_THRESHOLD
                    )
                    if whole and match.image_id not in unverified:
                        unverified[match.image_id] = replace(match, mirrored=mirrored)
                    continue
                pixels, gradients = similarity(stored, query.signature)
                if pixels < VERIFY_MIN_NCC or gradients < VERIFY_MIN_GRADIENT_NCC:
                    continue
                known = verified.get(match.image_id)
                if known is None or pixels > (known.similarity or 0.0):
                    verified[match.image_id] = replace(match, similarity=pixels, mirrored=mirrored)
        # Two portraits of one character can both pass against a copy; the copy's own is the closer.
        ranked = sorted(verified.values(), key=lambda m: (-(m.similarity or 0.0), m.total, m.image_id))
        return ranked + [m for image_id, m in unverified.items() if image_id not in verified]

    def add(self, image_id: int, value: int, extra: int = 0) -> None:
        if not 0 <= value < (1 << HASH_BITS) or not 0 <= extra < (1 << HASH_BITS):
            raise ValueError(f"hash {value!r} is not a 64-bit unsigned integer")
        if self._size == len(self._hashes):
            self._grow(self._size * 2)
        self._ids[self._size] = image_id
        self._hashes[self._size] = value
        self._extra[self._size] = extra
        self._size += 1
        if self._size - self._frozen > max(self.min_pending, self._frozen // 8):
            self._rebuild()

    def extend(self, items: Iterable[tuple[int, int, int]]) -> None:
        """Bulk add of (image_id, hash, extra hash), with one rebuild at the end."""
        batch = np.asarray(list(items), dtype=np.uint64).reshape(-1, 3)
        if batch.size == 0:
            return
        needed = self._size + len(batch)
        if needed > len(self._hashes):
            self._grow(max(needed, self._size * 2))
        end = self._size + len(batch)
        self._ids[self._size : end] = batch[:, 0].astype(np.int64)
        self._hashes[self._size : end] = batch[:, 1]
        self._extra[self._size : end] = batch[:, 2]
        self._size = end
        self._rebuild()

    def _grow(self, capacity: int) -> None:
        for name in ("_ids", "_hashes", "_extra"):
            old = getattr(self, name)
            grown = np.zeros(capacity, dtype=old.dtype)
            grown[: len(old)] = old
            setattr(self, name, grown)

    def _rebuild(self) -> None:
        hashes = self._hashes[: self._size]
        order = np.empty((CHUNKS, self._size), dtype=np.int64)
        offsets = np.zeros((CHUNKS, CHUNK_MASK + 2), dtype=np.int64)
        for chunk in range(CHUNKS):
            keys = ((hashes >> np.uint64(chunk * CHUNK_BITS)) & np.uint64(CHUNK_MASK)).astype(np.int64)
            order[chunk] = np.argsort(keys, kind="stable")
            offsets[chunk, 1:] = np.cumsum(np.bincount(keys, minlength=CHUNK_MASK + 1))
        self._order = order.ravel()
        # The hashes in bucket order: a probed bucket is one contiguous slice, read without
        # jumping around memory; row numbers are looked up only for the rows that match.
        self._bucketed = hashes[self._order]
        self._offsets = offsets
        self._frozen = self._size

    def _probe(self, value: int, max_distance: int) -> np.ndarray:
        """Positions in the bucket-ordered arrays of every frozen row in a probed bucket (a row
        may appear once per chunk it shares)."""
        masks = _mask_array(max_distance // CHUNKS)
        chunk_values = np.array(
            [(value >> (chunk * CHUNK_BITS)) & CHUNK_MASK for chunk in range(CHUNKS)], dtype=np.int64
        )
        keys = chunk_values[:, None] ^ masks[None, :]
        lanes = np.arange(CHUNKS)[:, None]
        starts = self._offsets[lanes, keys].ravel()
        counts = self._offsets[lanes, keys + 1].ravel() - starts
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        # Chunk c's buckets live at [c * frozen, (c + 1) * frozen) of the flattened arrays.
        starts = starts + np.repeat(np.arange(CHUNKS, dtype=np.int64) * self._frozen, len(masks))
        shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return np.arange(total, dtype=np.int64) + shift

    def _within(
        self, value: int, extra: int, max_distance: int, max_extra: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Rows (unique, ascending) within both distances, with their two distances."""
        query = np.uint64(value)
        if self._frozen and max_distance // CHUNKS < 3:
            positions = self._probe(value, max_distance)
            distances = np.bitwise_count(self._bucketed[positions] ^ query)
            near = distances <= max_distance
            frozen_rows = self._order[positions[near]]
            pending = np.arange(self._frozen, self._size, dtype=np.int64)
        else:
            # Nothing frozen yet, or a radius so wide that probing would touch every row anyway.
            frozen_rows = np.empty(0, dtype=np.int64)
            pending = np.arange(self._size, dtype=np.int64)
        if pending.size:
            near = np.bitwise_count(self._hashes[pending] ^ query) <= max_distance
            rows = np.concatenate([frozen_rows, pending[near]])
        else:
            rows = frozen_rows
        rows = np.unique(rows)
        secondary = np.bitwise_count(self._extra[rows] ^ np.uint64(extra))
        keep = secondary <= max_extra
        rows = rows[keep]
        primary = np.bitwise_count(self._hashes[rows] ^ query)
        return rows, primary, secondary[keep]

    def _within_many(
        self, values: list[int], extras: list[int], max_distance: int, max_extra: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`_within` for several queries at once: (row, primary, secondary) per matching
        (row, query) pair, rows possibly repeated across queries."""
        queries = np.asarray(values, dtype=np.uint64)
        extra = np.asarray(extras, dtype=np.uint64)
        rows_parts: list[np.ndarray] = []
        query_parts: list[np.ndarray] = []
        if self._frozen and max_distance // CHUNKS < 3:
            masks = _mask_array(max_distance // CHUNKS)
            shifts = np.arange(CHUNKS, dtype=np.uint64) * np.uint64(CHUNK_BITS)
            chunks = ((queries[:, None] >> shifts[None, :]) & np.uint64(CHUNK_MASK)).astype(np.int64)
            keys = chunks[:, :, None] ^ masks[None, None, :]  # query x chunk x mask
            lanes = np.arange(CHUNKS)[None, :, None]
            starts = self._offsets[lanes, keys]
            counts = (self._offsets[lanes, keys + 1] - starts).ravel()
            starts = (starts + (np.arange(CHUNKS, dtype=np.int64) * self._frozen)[None, :, None]).ravel()
            total = int(counts.sum())
            if total:
                shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
                positions = np.arange(total, dtype=np.int64) + shift
                owner = np.repeat(np.repeat(np.arange(len(queries)), CHUNKS * len(masks)), counts)
                near = np.bitwise_count(self._bucketed[positions] ^ queries[owner]) <= max_distance
                rows_parts.append(self._order[positions[near]])
                query_parts.append(owner[near])
            pending = np.arange(self._frozen, self._size, dtype=np.int64)
        else:
            pending = np.arange(self._size, dtype=np.int64)
        if pending.size:
            near = np.bitwise_count(self._hashes[pending][None, :] ^ queries[:, None]) <= max_distance
            owner, column = np.nonzero(near)
            rows_parts.append(pending[column])
            query_parts.append(owner)
        if not rows_parts:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty, empty
        pairs = np.unique(np.concatenate(rows_parts) * len(queries) + np.concatenate(query_parts))
        rows, owner = np.divmod(pairs, len(queries))
        secondary = np.bitwise_count(self._extra[rows] ^ extra[owner])
        keep = secondary <= max_extra
        rows, owner = rows[keep], owner[keep]
        return rows, np.bitwise_count(self._hashes[rows] ^ queries[owner]), secondary[keep]

    def near(self, value: int, max_distance: int) -> list[tuple[int, int]]:
        """(image_id, distance) for every indexed hash within `max_distance` bits, nearest first."""
        rows, primary, _ = self._within(value, 0, max_distance, HASH_BITS)
        found = sorted(zip(primary.tolist(), self._ids[rows].tolist(), strict=True))
        return [(image_id, distance) for distance, image_id in found]

    def near_pair(self, value: int, extra: int, max_distance: int, max_extra: int) -> list[Match]:
        """Matches within `max_distance` on the indexed hash AND `max_extra` on the second hash,
        nearest (by summed distance) first, ties by image id."""
        rows, primary, secondary = self._within(value, extra, max_distance, max_extra)
        matches = [
            Match(image_id, p, s)
            for image_id, p, s in zip(
                self._ids[rows].tolist(), primary.tolist(), secondary.tolist(), strict=True
            )
        ]
        return sorted(matches, key=lambda m: (m.total, m.image_id))

    @classmethod
    def load(cls, engine: Engine) -> HashIndex:
        """Every kept image of the catalog, all characters together, in id order."""
        index = cls()
        crops: list[tuple[int, int, int]] = []
        with session_scope(engine) as session:
            rows = session.execute(
                select(Image.id, Image.phash, Image.dhash, Image.crop_hashes)
                .where(Image.status.in_(INDEXED_STATUSES), Image.phash.is_not(None))
                .order_by(Image.id)
            )
            whole = []
            for image_id, phash, dhash, crop_text in rows:
                whole.append((image_id, hash_to_int(phash), hash_to_int(dhash) if dhash else 0))
                crops.extend((image_id, p, d) for p, d in crop_hashes_from_text(crop_text))
            index.extend(whole)
        if crops:
            index.extend_crops(crops)
        return index


def brute_force_near(hashes: np.ndarray, value: int, max_distance: int) -> np.ndarray:
    """All-pairs baseline: row numbers of `hashes` within `max_distance` of `value`."""
    distances = np.bitwise_count(hashes ^ np.uint64(value))
    return np.flatnonzero(distances <= max_distance)

"""Near-duplicate lookup over 64-bit perceptual hashes without comparing all pairs.

Multi-index hashing (Norouzi et al., "Fast Search in Hamming Space with Multi-Index Hashing"):
the 64 bits are cut into `CHUNKS` chunks of 16 bits. If two hashes differ in at most `r` bits,
then by pigeonhole at least one chunk differs in at most `r // CHUNKS` bits, so probing each
chunk's table with every value within that radius finds every true neighbour; the candidates
are then checked exactly, vectorised with numpy. At 1M hashes and r <= 11 a lookup probes
4 x 137 buckets
(16 + 120 + 1 values per chunk), gathered and checked with a handful of numpy operations.

The index holds every image whose bytes are kept (accepted and review), across all characters,
and is rebuilt from the catalog at the start of a run (`load`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache

import numpy as np
from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus

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


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def hash_to_int(text: str) -> int:
    return int(text, 16)


def int_to_hash(value: int) -> str:
    return f"{value:016x}"


@dataclass(frozen=True)
class Match:
    image_id: int
    phash_distance: int
    dhash_distance: int

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

    def __len__(self) -> int:
        return self._size

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
        with session_scope(engine) as session:
            rows = session.execute(
                select(Image.id, Image.phash, Image.dhash)
                .where(Image.status.in_(INDEXED_STATUSES), Image.phash.is_not(None))
                .order_by(Image.id)
            )
            index.extend(
                (image_id, hash_to_int(phash), hash_to_int(dhash) if dhash else 0)
                for image_id, phash, dhash in rows
            )
        return index


def brute_force_near(hashes: np.ndarray, value: int, max_distance: int) -> np.ndarray:
    """All-pairs baseline: row numbers of `hashes` within `max_distance` of `value`."""
    distances = np.bitwise_count(hashes ^ np.uint64(value))
    return np.flatnonzero(distances <= max_distance)

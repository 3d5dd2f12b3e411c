"""The multi-index hash index returns exactly what a brute-force scan returns."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus
from media.hashes import hamming, hash_to_int, int_to_hash
from scraper.dedup import HashIndex, brute_force_near

HASH = st.integers(min_value=0, max_value=(1 << 64) - 1)


@st.composite
def clustered_hashes(draw: st.DrawFn) -> list[int]:
    """Random hashes plus near copies of some of them (a few bits flipped), so that small radii
    have answers and chunk buckets hold several rows."""
    bases = draw(st.lists(HASH, min_size=0, max_size=40))
    hashes = list(bases)
    for base in bases:
        for flips in draw(st.lists(st.lists(st.integers(0, 63), max_size=14), max_size=3)):
            value = base
            for bit in flips:
                value ^= 1 << bit
            hashes.append(value)
    return hashes


def brute(
    hashes: list[int], extras: list[int], query: int, extra: int, radius: int, extra_radius: int
) -> set:
    return {
        (row, hamming(h, query), hamming(e, extra))
        for row, (h, e) in enumerate(zip(hashes, extras, strict=True))
        if hamming(h, query) <= radius and hamming(e, extra) <= extra_radius
    }


@settings(max_examples=300, deadline=None)
@given(
    hashes=clustered_hashes(),
    query=HASH,
    pick=st.integers(min_value=0),
    flips=st.lists(st.integers(0, 63), max_size=12),
    radius=st.integers(0, 20),
    min_pending=st.sampled_from([0, 1, 3, 4096]),
)
def test_near_matches_brute_force(
    hashes: list[int], query: int, pick: int, flips: list[int], radius: int, min_pending: int
) -> None:
    if hashes and pick % 2:  # half the time, query near an indexed hash
        query = hashes[pick % len(hashes)]
        for bit in flips:
            query ^= 1 << bit
    index = HashIndex(min_pending=min_pending)
    for row, value in enumerate(hashes):
        index.add(row, value)
    found = index.near(query, radius)
    expected = brute(hashes, [0] * len(hashes), query, 0, radius, 64)
    assert {(row, distance) for row, distance, _ in expected} == set(found)
    assert len(found) == len(expected)  # no row twice
    assert [d for _, d in found] == sorted(d for _, d in found)


@settings(max_examples=200, deadline=None)
@given(
    hashes=clustered_hashes(),
    seed=st.integers(0, 2**32 - 1),
    radius=st.integers(0, 14),
    extra_radius=st.integers(0, 30),
)
def test_near_pair_checks_both_hashes(hashes: list[int], seed: int, radius: int, extra_radius: int) -> None:
    rng = np.random.default_rng(seed)
    extras = [int(v) for v in rng.integers(0, 2**63, size=len(hashes), dtype=np.uint64)]
    index = HashIndex(min_pending=2)
    index.extend((row, h, e) for row, (h, e) in enumerate(zip(hashes, extras, strict=True)))
    query = hashes[0] if hashes else 0
    extra = extras[0] ^ 0b1011 if extras else 0
    matches = index.near_pair(query, extra, radius, extra_radius)
    assert {(m.image_id, m.phash_distance, m.dhash_distance) for m in matches} == brute(
        hashes, extras, query, extra, radius, extra_radius
    )
    assert [(m.total, m.image_id) for m in matches] == sorted((m.total, m.image_id) for m in matches)


def test_large_index_agrees_with_vectorised_brute_force() -> None:
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 2**64 - 1, size=50_000, dtype=np.uint64)
    # Plant neighbours at known distances from the first few hashes.
    for row in range(20):
        flipped = int(hashes[row])
        for bit in rng.choice(64, size=row % 12, replace=False):
            flipped ^= 1 << int(bit)
        hashes[20_000 + row] = flipped
    index = HashIndex()
    index.extend((row, int(h), 0) for row, h in enumerate(hashes))
    for row in range(20):
        for radius in (0, 5, 10, 11):
            expected = set(brute_force_near(hashes, int(hashes[row]), radius).tolist())
            assert {image_id for image_id, _ in index.near(int(hashes[row]), radius)} == expected


def test_load_takes_kept_images_of_every_character(sqlite_engine: Engine) -> None:
    with session_scope(sqlite_engine) as session:
        for number, status in enumerate(
            [ImageStatus.accepted, ImageStatus.review, ImageStatus.duplicate, ImageStatus.rejected]
        ):
            session.add(
                Image(
                    sha256=f"{number:064x}",
                    phash=int_to_hash(0xF0F0 << number),
                    dhash=int_to_hash(number),
                    status=status,
                )
            )
    index = HashIndex.load(sqlite_engine)
    assert len(index) == 2
    assert [image_id for image_id, _ in index.near(0xF0F0, 0)] == [1]
    assert index.near(0xF0F0 << 2, 0) == []  # a duplicate row is not an original to match
    assert hash_to_int(int_to_hash(2**64 - 1)) == 2**64 - 1

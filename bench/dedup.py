"""Near-duplicate lookup: the multi-index (scraper.dedup.HashIndex) beside all-pairs comparison.

    .venv/bin/python -m bench.dedup [--quick] [--sizes 10000 100000 1000000] [--queries 300]

For each index size, the same queries (half of them planted near an indexed hash, half random) run
through `HashIndex.near_pair` at the production thresholds and through two all-pairs baselines:
the comparison yotsuba-net uses (a Python loop comparing the query with every stored hash; timed on
fewer queries, it is slow) and a vectorised numpy scan of every stored hash (XOR + popcount over
the whole array). Reported per size: lookup medians and p95, ratios, recall of the planted
near-duplicates (and agreement with the numpy scan, which is exact), build time, and memory (the
index's arrays after the build and the peak during it, by tracemalloc, beside the 16 bytes per
image the all-pairs arrays hold). Two hash distributions: uniform bits, and biased bits (each bit
set with its own probability drawn from Beta(2, 2), closer to real perceptual hashes).

`--retrieval` (on by default) also times what ingest really asks: `HashIndex.candidates`, the
crop-tolerant retrieval (whole image and five sub-crops per image, both directions, at the
candidate radii), beside an all-pairs numpy scan of the same whole and sub-crop arrays, and the
flip-tolerant lookup ingest makes (`HashIndex.find` retrieves for the query and for its mirror
image: two `candidates` calls, the mirror's hashes unrelated to any stored row).

Target (2 cores): a near-duplicate lookup at 1M hashes under 1 ms.
"""

from __future__ import annotations

import functools
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.harness import Target, emit, parser, percentile, time_ms
from media.hashes import SUBCROP_ANCHORS, Fingerprint
from scraper.dedup import (
    CANDIDATE_DHASH_THRESHOLD,
    CANDIDATE_THRESHOLD,
    DHASH_THRESHOLD,
    PHASH_THRESHOLD,
    HashIndex,
)


def make_hashes(rng: np.random.Generator, size: int, kind: str) -> np.ndarray:
    if kind == "uniform":
        return rng.integers(0, np.iinfo(np.uint64).max, size=size, dtype=np.uint64, endpoint=True)
    probabilities = rng.beta(2, 2, size=64)
    bits = rng.random((size, 64)) < probabilities
    weights = np.left_shift(np.uint64(1), np.arange(64, dtype=np.uint64))
    return (bits.astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def flip_bits(rng: np.random.Generator, value: int, count: int) -> int:
    for bit in rng.choice(64, size=count, replace=False):
        value ^= 1 << int(bit)
    return value


def all_pairs(phashes: np.ndarray, dhashes: np.ndarray, phash: int, dhash: int) -> np.ndarray:
    near = np.bitwise_count(phashes ^ np.uint64(phash)) <= PHASH_THRESHOLD
    near &= np.bitwise_count(dhashes ^ np.uint64(dhash)) <= DHASH_THRESHOLD
    return np.flatnonzero(near)


def python_all_pairs(pairs: list[tuple[int, int]], phash: int, dhash: int) -> list[int]:
    """yotsuba-net's way: compare the query with every stored hash in a Python loop."""
    return [
        row
        for row, (p, d) in enumerate(pairs)
        if (p ^ phash).bit_count() <= PHASH_THRESHOLD and (d ^ dhash).bit_count() <= DHASH_THRESHOLD
    ]


def _warm(lookup: Callable[[Any], object], probes: list[Any]) -> list[float]:
    """Seconds per lookup with the lookups back to back. In the main pass each lookup follows an
    all-pairs scan, whose sweep over every stored hash evicts the index from the CPU caches (the
    'cold' figure); ingest does other work between lookups too, so the truth lies between."""
    return [time_ms(functools.partial(lookup, probe)) / 1000 for probe in probes]


def build_index(phashes: np.ndarray, dhashes: np.ndarray) -> HashIndex:
    index = HashIndex()
    index.extend(zip(range(len(phashes)), phashes.tolist(), dhashes.tolist(), strict=True))
    index.near_pair(0, 0, PHASH_THRESHOLD, DHASH_THRESHOLD)  # the first lookup freezes the tables
    return index


def index_memory(phashes: np.ndarray, dhashes: np.ndarray) -> tuple[int, int]:
    """Bytes the built index holds, and the peak while building it (tracemalloc sees numpy)."""
    tracemalloc.start()
    try:
        index = build_index(phashes, dhashes)
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del index
    return held, peak


def measure(size: int, kind: str, queries: int, python_queries: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng([seed, size])
    phashes = make_hashes(rng, size, kind)
    dhashes = make_hashes(rng, size, kind)
    started = time.perf_counter()
    index = build_index(phashes, dhashes)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    pairs = list(zip(phashes.tolist(), dhashes.tolist(), strict=True))
    python_build_s = time.perf_counter() - started
    held, peak = index_memory(phashes, dhashes)

    probes, planted = [], []
    for number in range(queries):
        if number % 2 == 0:
            row = int(rng.integers(size))
            probes.append(
                (
                    flip_bits(rng, int(phashes[row]), int(rng.integers(0, PHASH_THRESHOLD + 1))),
                    flip_bits(rng, int(dhashes[row]), int(rng.integers(0, DHASH_THRESHOLD + 1))),
                )
            )
            planted.append(row)
        else:
            probes.append((int(make_hashes(rng, 1, kind)[0]), int(make_hashes(rng, 1, kind)[0])))
            planted.append(None)

    index_times, scan_times, python_times = [], [], []
    found_planted = agree = 0
    for number, ((phash, dhash), row) in enumerate(zip(probes, planted, strict=True)):
        started = time.perf_counter()
        found = sorted(m.image_id for m in index.near_pair(phash, dhash, PHASH_THRESHOLD, DHASH_THRESHOLD))
        index_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        expected = all_pairs(phashes, dhashes, phash, dhash).tolist()
        scan_times.append(time.perf_counter() - started)
        if number < python_queries:
            started = time.perf_counter()
            looped = python_all_pairs(pairs, phash, dhash)
            python_times.append(time.perf_counter() - started)
            if looped != expected:
                raise AssertionError(f"the Python loop and the numpy scan disagree at size {size}")
        agree += found == expected
        found_planted += row is not None and row in found
    cold_us = statistics.median(index_times) * 1e6
    warm_times = _warm(lambda probe: index.near_pair(*probe, PHASH_THRESHOLD, DHASH_THRESHOLD), probes)
    index_us = statistics.median(warm_times) * 1e6
    scan_us = statistics.median(scan_times) * 1e6
    python_us = statistics.median(python_times) * 1e6
    return {
        "hashes": size,
        "distribution": kind,
        "index_lookup_median_us": round(index_us, 1),
        "index_lookup_p95_us": round(percentile(warm_times, 95) * 1e6, 1),
        "index_lookup_cold_median_us": round(cold_us, 1),
        "numpy_all_pairs_median_us": round(scan_us, 1),
        "python_all_pairs_median_us": round(python_us, 1),
        "python_all_pairs_queries": len(python_times),
        "numpy_all_pairs_over_index": round(scan_us / index_us, 1),
        "python_all_pairs_over_index": round(python_us / index_us, 1),
        "planted_recall": round(found_planted / sum(row is not None for row in planted), 4),
        "agreement_with_all_pairs": round(agree / len(probes), 4),
        "index_build_s": round(build_s, 3),
        "python_all_pairs_build_s": round(python_build_s, 3),
        "index_mib": round(held / 2**20, 1),
        "index_build_peak_mib": round(peak / 2**20, 1),
        "all_pairs_numpy_mib": round((phashes.nbytes + dhashes.nbytes) / 2**20, 1),
        "under_1ms": index_us < 1000,
    }


def measure_retrieval(size: int, kind: str, queries: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng([seed, size, 7])
    crops_per_image = len(SUBCROP_ANCHORS)
    phashes, dhashes = make_hashes(rng, size, kind), make_hashes(rng, size, kind)
    crop_p = make_hashes(rng, size * crops_per_image, kind)
    crop_d = make_hashes(rng, size * crops_per_image, kind)
    crop_ids = np.repeat(np.arange(size), crops_per_image)
    index = HashIndex()
    index.extend(zip(range(size), phashes.tolist(), dhashes.tolist(), strict=True))
    index.extend_crops(zip(crop_ids.tolist(), crop_p.tolist(), crop_d.tolist(), strict=True))

    def query() -> Fingerprint:
        row = int(rng.integers(size))
        near = lambda value: flip_bits(rng, int(value), int(rng.integers(0, 6)))
        crops = tuple(
            (near(crop_p[row * crops_per_image + i]), near(crop_d[row * crops_per_image + i]))
            for i in range(crops_per_image)
        )
        # A mirror image's hashes are as good as random with respect to the stored rows.
        mirror = Fingerprint(
            int(make_hashes(rng, 1, kind)[0]),
            int(make_hashes(rng, 1, kind)[0]),
            tuple((int(p), int(d)) for p, d in zip(make_hashes(rng, crops_per_image, kind),
                                                    make_hashes(rng, crops_per_image, kind), strict=True)),
            b"",
        )  # fmt: skip
        return Fingerprint(near(phashes[row]), near(dhashes[row]), crops, b"", mirror)

    def scan(fp: Fingerprint) -> set[int]:
        found: set[int] = set()
        for qp, qd, (hp, hd, ids) in [
            (fp.phash, fp.dhash, (phashes, dhashes, None)),
            (fp.phash, fp.dhash, (crop_p, crop_d, crop_ids)),
            *[(cp, cd, (phashes, dhashes, None)) for cp, cd in fp.crops],
        ]:
            near = np.bitwise_count(hp ^ np.uint64(qp)) <= CANDIDATE_THRESHOLD
            near &= np.bitwise_count(hd ^ np.uint64(qd)) <= CANDIDATE_DHASH_THRESHOLD
            rows = np.flatnonzero(near)
            found.update((ids[rows] if ids is not None else rows).tolist())
        return found

    index_times, scan_times = [], []
    fingerprints = [query() for _ in range(queries)]
    for fp in fingerprints:
        started = time.perf_counter()
        found = index.candidates(fp)
        index_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        expected = scan(fp)
        scan_times.append(time.perf_counter() - started)
        if {m.image_id for m in found} != expected:
            raise AssertionError(f"candidates and all-pairs scan disagree at size {size}")
    cold_us = statistics.median(index_times) * 1e6
    warm_times = _warm(index.candidates, fingerprints)
    index_us = statistics.median(warm_times) * 1e6
    scan_us = statistics.median(scan_times) * 1e6

    def with_mirror(fp: Fingerprint) -> object:
        assert fp.mirror is not None
        return index.candidates(fp), index.candidates(fp.mirror)

    mirror_times = _warm(with_mirror, fingerprints)
    return {
        "images": size,
        "hashes": size * (1 + crops_per_image),
        "distribution": kind,
        "candidates_median_us": round(index_us, 1),
        "candidates_p95_us": round(percentile(warm_times, 95) * 1e6, 1),
        "candidates_cold_median_us": round(cold_us, 1),
        "candidates_with_mirror_median_us": round(statistics.median(mirror_times) * 1e6, 1),
        "candidates_with_mirror_p95_us": round(percentile(mirror_times, 95) * 1e6, 1),
        "all_pairs_median_us": round(scan_us, 1),
        "all_pairs_over_index": round(scan_us / index_us, 1),
    }


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--sizes", type=int, nargs="+", default=None)
    args_parser.add_argument("--queries", type=int, default=None)
    args_parser.add_argument("--python-queries", type=int, default=None, help="queries for the Python loop")
    args_parser.add_argument("--distributions", nargs="+", default=["uniform", "biased"])
    args_parser.add_argument("--no-retrieval", action="store_true", help="skip crop-tolerant retrieval")
    args = args_parser.parse_args()
    started = time.perf_counter()
    sizes = args.sizes or ([10_000] if args.quick else [10_000, 100_000, 1_000_000])
    queries = args.queries or (20 if args.quick else 300)
    python_queries = args.python_queries or (4 if args.quick else 20)
    results = [
        measure(size, kind, queries, python_queries, args.seed)
        for kind in args.distributions
        for size in sizes
    ]
    retrieval = (
        []
        if args.no_retrieval
        else [
            measure_retrieval(size, kind, queries, args.seed) for kind in args.distributions for size in sizes
        ]
    )
    largest = [row for row in results if row["hashes"] == max(sizes)]
    targets = [
        Target(f"near-duplicate lookup at {row['hashes']:,} hashes ({row['distribution']})", 1000,
               row["index_lookup_median_us"], "us").as_dict()
        for row in largest
    ]  # fmt: skip
    targets += [
        Target(f"crop-tolerant retrieval at {row['images']:,} images = {row['hashes']:,} hashes "
               f"({row['distribution']})", 1000, row["candidates_median_us"], "us").as_dict()
        for row in retrieval
        if row["images"] == max(sizes)
    ]  # fmt: skip
    ratios = {
        f"numpy_all_pairs_over_index_{row['hashes']}_{row['distribution']}": row["numpy_all_pairs_over_index"]
        for row in largest
    }
    ratios |= {
        f"python_all_pairs_over_index_{row['hashes']}_{row['distribution']}": row[
            "python_all_pairs_over_index"
        ]
        for row in largest
    }
    ratios |= {
        f"retrieval_all_pairs_over_index_{row['images']}_{row['distribution']}": row["all_pairs_over_index"]
        for row in retrieval
        if row["images"] == max(sizes)
    }
    ratios |= {
        f"retrieval_with_mirror_over_without_{row['images']}_{row['distribution']}": round(
            row["candidates_with_mirror_median_us"] / row["candidates_median_us"], 2
        )
        for row in retrieval
        if row["images"] == max(sizes)
    }
    emit(
        "dedup",
        {
            "baseline": "all-pairs comparison: a Python loop over every stored hash (yotsuba-net's way) "
            "and a vectorised numpy scan",
            "candidate": "scraper.dedup.HashIndex (multi-index hashing, exact within the thresholds)",
            "thresholds": {"phash": PHASH_THRESHOLD, "dhash": DHASH_THRESHOLD},
            "retrieval_radii": {"phash": CANDIDATE_THRESHOLD, "dhash": CANDIDATE_DHASH_THRESHOLD},
            "queries_per_size": queries,
            "results": {"lookup": results, "retrieval": retrieval},
            "ratios": ratios,
            "targets": targets,
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()

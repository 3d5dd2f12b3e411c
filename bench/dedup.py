"""Near-duplicate lookup time: the multi-index (scraper.dedup.HashIndex) beside an all-pairs scan.

    .venv/bin/python -m bench.dedup [--sizes 10000 100000 1000000] [--queries 300]

For each index size, the same queries (half of them near an indexed hash, half random) run
through `HashIndex.near_pair` at the production thresholds and through a vectorised numpy scan
of every stored hash (XOR + popcount over the whole array, both hashes checked). Two hash
distributions: uniform bits, and biased bits (each bit set with its own probability drawn from
Beta(2, 2), closer to real perceptual hashes, whose bits are not equally likely). Prints JSON
with medians (microseconds) and the all-pairs/index ratio.

`--retrieval` also times what ingest really asks: `HashIndex.candidates`, the crop-tolerant
retrieval (whole image and five sub-crops per image, both directions, at the candidate radii),
beside an all-pairs scan of the same whole and sub-crop arrays.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np

from scraper.dedup import (
    CANDIDATE_DHASH_THRESHOLD,
    CANDIDATE_THRESHOLD,
    DHASH_THRESHOLD,
    PHASH_THRESHOLD,
    SUBCROP_ANCHORS,
    Fingerprint,
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


def measure(size: int, kind: str, queries: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng([seed, size])
    phashes = make_hashes(rng, size, kind)
    dhashes = make_hashes(rng, size, kind)
    started = time.perf_counter()
    index = HashIndex()
    index.extend(zip(range(size), phashes.tolist(), dhashes.tolist(), strict=True))
    build_s = time.perf_counter() - started

    probes = []
    for number in range(queries):
        if number % 2 == 0:
            row = int(rng.integers(size))
            probes.append(
                (
                    flip_bits(rng, int(phashes[row]), int(rng.integers(0, PHASH_THRESHOLD + 1))),
                    flip_bits(rng, int(dhashes[row]), int(rng.integers(0, DHASH_THRESHOLD + 1))),
                )
            )
        else:
            probes.append((int(make_hashes(rng, 1, kind)[0]), int(make_hashes(rng, 1, kind)[0])))

    index_times, scan_times = [], []
    for phash, dhash in probes:
        started = time.perf_counter()
        found = index.near_pair(phash, dhash, PHASH_THRESHOLD, DHASH_THRESHOLD)
        index_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        expected = all_pairs(phashes, dhashes, phash, dhash)
        scan_times.append(time.perf_counter() - started)
        if sorted(m.image_id for m in found) != expected.tolist():
            raise AssertionError(f"index and all-pairs scan disagree at size {size}")
    index_us = statistics.median(index_times) * 1e6
    scan_us = statistics.median(scan_times) * 1e6
    return {
        "hashes": size,
        "distribution": kind,
        "index_build_s": round(build_s, 3),
        "index_lookup_median_us": round(index_us, 1),
        "index_lookup_p95_us": round(float(np.percentile(index_times, 95)) * 1e6, 1),
        "all_pairs_lookup_median_us": round(scan_us, 1),
        "all_pairs_over_index": round(scan_us / index_us, 1),
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
        return Fingerprint(near(phashes[row]), near(dhashes[row]), crops, b"")

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
    for _ in range(queries):
        fp = query()
        started = time.perf_counter()
        found = index.candidates(fp)
        index_times.append(time.perf_counter() - started)
        started = time.perf_counter()
        expected = scan(fp)
        scan_times.append(time.perf_counter() - started)
        if {m.image_id for m in found} != expected:
            raise AssertionError(f"candidates and all-pairs scan disagree at size {size}")
    index_us = statistics.median(index_times) * 1e6
    scan_us = statistics.median(scan_times) * 1e6
    return {
        "images": size,
        "hashes": size * (1 + crops_per_image),
        "distribution": kind,
        "candidates_median_us": round(index_us, 1),
        "candidates_p95_us": round(float(np.percentile(index_times, 95)) * 1e6, 1),
        "all_pairs_median_us": round(scan_us, 1),
        "all_pairs_over_index": round(scan_us / index_us, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--distributions", nargs="+", default=["uniform", "biased"])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--retrieval", action="store_true", help="Also time crop-tolerant retrieval.")
    args = parser.parse_args()
    results = [
        measure(size, kind, args.queries, args.seed) for kind in args.distributions for size in args.sizes
    ]
    report = {
        "benchmark": "near-duplicate lookup",
        "thresholds": {"phash": PHASH_THRESHOLD, "dhash": DHASH_THRESHOLD},
        "queries_per_size": args.queries,
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "results": results,
    }
    if args.retrieval:
        report["retrieval"] = {
            "radii": {"phash": CANDIDATE_THRESHOLD, "dhash": CANDIDATE_DHASH_THRESHOLD},
            "results": [
                measure_retrieval(size, kind, args.queries, args.seed)
                for kind in args.distributions
                for size in args.sizes
            ],
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

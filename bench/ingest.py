"""Ingest throughput against the fake Reddit, beside the decode-only rate of the same files.

    .venv/bin/python -m bench.ingest [--quick] [--characters 6] [--repeats 3]

A scripted fake Reddit world (sandbox.reddit.build_world) is served on 127.0.0.1 and scraped
into a fresh SQLite catalog by `scraper.run.scrape` (listing, download, decode, hashes, dedup,
face crops, commits). The same files are then run through `media.decode.decode_image` alone
and through `Ingestor.prepare` (decode + hashes + faces, no I/O). Prints JSON with medians over
the repeats and the ratios. The decode-only rate is the ceiling on this machine (baseline); ingest
is the candidate.

It also times `media.hashes.fingerprint` on a 768 px portrait and a 1.5 MP scene (the same for
every image a scrape keeps): the picture's own hashes, with its mirror image's (what ingest makes:
the mirror's from the picture's own small copies, mirrored), and the mirror hashed as a picture of
its own (the way before: a second shrink of every crop) as the baseline.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image as PILImage

from bench.harness import cascade_path, emit, interleave, parser
from catalog.db import make_engine, session_scope, upgrade
from catalog.schema import Image
from catalog.settings import DownloadSettings, Settings
from catalog.settings_sections import RedditSettings
from catalog.store import ImageStore
from media.decode import ImageRejected, decode_image
from media.faces import FaceDetector
from media.hashes import fingerprint, hashing_copy, perceptual_hashes, subcrop_hashes
from sandbox.characters.traits import make_characters
from sandbox.reddit import FakeReddit, build_world
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.run import scrape


async def one_scrape(characters: int, cascade: Path, seed: int) -> dict[str, float]:
    async with FakeReddit() as fake:
        expected = build_world(fake.world, make_characters(characters, seed), seed=seed)
        with tempfile.TemporaryDirectory() as tmp:
            settings = Settings(
                data_dir=Path(tmp),
                faces={"cascade_path": cascade},
                reddit=RedditSettings(
                    client_id="fake-client",
                    client_secret="fake-secret",
                    oauth_url=fake.base_url,
                    reddit_url=fake.base_url,
                    short_url=fake.base_url,
                    imgur_client_id="fake-imgur",
                    imgur_api_url=f"http://api.imgur.com:{fake.port}",
                    rate_limit_backoff=0.01,
                ),
                download=DownloadSettings(allow_private_addresses=True, hosts=fake.hosts),
                _env_file=None,
            )
            engine = make_engine(settings.resolved_database_url)
            upgrade(engine)
            from catalog.characters import NewCharacter, add_character

            for name in expected.characters:
                series = expected.series_subreddit[name]
                add_character(
                    engine,
                    NewCharacter(
                        name=name,
                        aliases=expected.aliases[name],
                        subreddits=[expected.subreddits[name]],
                        title_subreddits=[series],
                        comment_threads=[expected.discussion_threads[series]],
                        comment_subreddit=series,
                    ),
                )
            started = time.perf_counter()
            summary = await scrape(settings, engine)
            elapsed = time.perf_counter() - started
            with session_scope(engine) as session:
                rows = session.query(Image).count()
            engine.dispose()
    files = [stored.data for stored in fake.world.files.values() if stored.content_type.startswith("image/")]
    return {
        "seconds": elapsed,
        "images": summary.totals.seen,
        "rows": rows,
        "stored": summary.totals.new,
        "files": files,  # type: ignore[dict-item]
    }


def decode_rate(files: list[bytes], settings: Settings) -> float:
    started = time.perf_counter()
    for data in files:
        try:
            decode_image(data, settings.images)
        except ImageRejected:
            pass
    return len(files) / (time.perf_counter() - started)


def prepare_rate(files: list[bytes], ingestor: Ingestor) -> float:
    started = time.perf_counter()
    for data in files:
        ingestor.prepare(data)
    return len(files) / (time.perf_counter() - started)


def fingerprint_times(repeats: int, seed: int) -> dict[str, dict[str, float]]:
    """Median ms of a picture's fingerprint alone, with its mirror's, and with the mirror's made
    as a picture of its own, per picture size (interleaved)."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, (height, width) in {"portrait_768": (768, 768), "scene_1500x1000": (1000, 1500)}.items():
        rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
        hashes = perceptual_hashes(rgb)
        # the copy the sub-crops are hashed on, mirrored: what the way before hashed as a picture
        # of its own, beside the picture's own fingerprint
        flipped = np.asarray(hashing_copy(rgb).transpose(PILImage.Transpose.FLIP_LEFT_RIGHT))

        def separately(rgb: np.ndarray = rgb, flipped: np.ndarray = flipped, hashes: tuple = hashes) -> None:
            fingerprint(rgb, *hashes, mirror=False)
            perceptual_hashes(flipped)
            subcrop_hashes(PILImage.fromarray(flipped))

        samples = interleave(
            {
                "own": lambda rgb=rgb, hashes=hashes: fingerprint(rgb, *hashes, mirror=False),
                "with_mirror": lambda rgb=rgb, hashes=hashes: fingerprint(rgb, *hashes),
                "mirror_separately": separately,
            },
            repeats,
        )
        out[name] = {key: round(statistics.median(values), 2) for key, values in samples.items()}
    return out


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--characters", type=int, default=None)
    args_parser.add_argument("--repeats", type=int, default=None)
    args = args_parser.parse_args()
    started = time.perf_counter()
    characters = args.characters or (2 if args.quick else 6)
    repeats = args.repeats or (1 if args.quick else 3)
    cascade = cascade_path()

    runs = [asyncio.run(one_scrape(characters, cascade, args.seed)) for _ in range(repeats)]
    files: list[bytes] = runs[0]["files"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), faces={"cascade_path": cascade}, _env_file=None)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        ingestor = Ingestor(
            engine,
            ImageStore.from_settings(settings),
            settings,
            FaceDetector(cascade, settings.faces),
            HashIndex(),
        )
        decode, prepare = [], []
        for _ in range(repeats):  # interleaved, so drift hits both alike
            decode.append(decode_rate(files, settings))
            prepare.append(prepare_rate(files, ingestor))
        engine.dispose()
    fingerprints = fingerprint_times(5 if args.quick else 30, args.seed)
    ingest = statistics.median(run["images"] / run["seconds"] for run in runs)
    decode_median, prepare_median = statistics.median(decode), statistics.median(prepare)
    emit(
        "ingest",
        {
            "baseline": "decode-only rate of the same files (media.decode.decode_image, one thread): "
            "the ceiling on this machine",
            "candidate": "scraper.run.scrape end to end through real asyncpraw against the fake Reddit",
            "results": {
                "characters": characters,
                "repeats": repeats,
                "image_urls_per_run": runs[0]["images"],
                "stored_per_run": runs[0]["stored"],
                "catalog_rows_per_run": runs[0]["rows"],
                "files_decoded": len(files),
                "scrape_seconds_median": round(statistics.median(run["seconds"] for run in runs), 2),
                "ingest_images_per_s_median": round(ingest, 1),
                "decode_only_images_per_s_median": round(decode_median, 1),
                "prepare_images_per_s_median": round(prepare_median, 1),
                "fingerprint_median_ms": fingerprints,
                "note": "ingest = listing + download + decode + hashes + dedup + faces + commits, end to "
                "end; prepare = decode + hashes + faces in memory, one thread",
            },
            "ratios": {
                "ingest_over_decode_only": round(ingest / decode_median, 3),
                "ingest_over_prepare": round(ingest / prepare_median, 3),
            }
            | {
                f"fingerprint_mirror_separately_over_with_mirror_{name}": round(
                    row["mirror_separately"] / row["with_mirror"], 3
                )
                for name, row in fingerprints.items()
            }
            | {
                f"fingerprint_with_mirror_over_own_{name}": round(row["with_mirror"] / row["own"], 3)
                for name, row in fingerprints.items()
            },
            "targets": [],
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()

"""Ingest throughput against the fake Reddit, beside the decode-only rate of the same files.

    .venv/bin/python -m bench.ingest [--characters 6] [--repeats 3] [--cascade PATH]

A scripted fake Reddit world (sandbox.reddit.build_world) is served on 127.0.0.1 and scraped
into a fresh SQLite catalog by `scraper.run.scrape` (listing, download, decode, hashes, dedup,
face crops, commits). The same files are then run through `catalog.imaging.decode_image` alone
and through `Ingestor.prepare` (decode + hashes + faces, no I/O). Prints JSON with medians over
the repeats and the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from catalog.db import make_engine, session_scope, upgrade
from catalog.faces import FaceDetector
from catalog.imaging import ImageRejected, decode_image
from catalog.schema import Image
from catalog.settings import DownloadSettings, RedditSettings, Settings
from catalog.store import ImageStore
from sandbox.characters.traits import make_characters
from sandbox.reddit import FakeReddit, build_world
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.run import scrape

DEFAULT_CASCADE = Path(__file__).resolve().parents[2] / "shared" / "data" / "lbpcascade_animeface.xml"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cascade", type=Path, default=DEFAULT_CASCADE)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    runs = [asyncio.run(one_scrape(args.characters, args.cascade, args.seed)) for _ in range(args.repeats)]
    files: list[bytes] = runs[0]["files"]  # type: ignore[assignment]
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), faces={"cascade_path": args.cascade}, _env_file=None)
        engine = make_engine(settings.resolved_database_url)
        upgrade(engine)
        ingestor = Ingestor(
            engine,
            ImageStore(settings.image_store_dir),
            settings,
            FaceDetector(args.cascade, settings.faces),
            HashIndex(),
        )
        decode = [decode_rate(files, settings) for _ in range(args.repeats)]
        prepare = [prepare_rate(files, ingestor) for _ in range(args.repeats)]
        engine.dispose()
    ingest = [run["images"] / run["seconds"] for run in runs]
    report = {
        "benchmark": "ingest throughput against the fake Reddit",
        "characters": args.characters,
        "image_urls_per_run": runs[0]["images"],
        "stored_per_run": runs[0]["stored"],
        "files_decoded": len(files),
        "cpus": os.cpu_count(),
        "scrape_seconds_median": round(statistics.median(run["seconds"] for run in runs), 2),
        "ingest_images_per_s_median": round(statistics.median(ingest), 1),
        "decode_only_images_per_s_median": round(statistics.median(decode), 1),
        "prepare_images_per_s_median": round(statistics.median(prepare), 1),
        "ingest_over_decode": round(statistics.median(ingest) / statistics.median(decode), 3),
        "ingest_over_prepare": round(statistics.median(ingest) / statistics.median(prepare), 3),
        "note": "ingest = listing + download + decode + hashes + dedup + faces + commits, end to end; "
        "prepare = decode + hashes + faces in memory, one thread",
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()

"""One `scrape()` against the fake Reddit: three characters, every source kind, exact counts; a
second run fetches nothing; a run killed mid-way and restarted ends with the same catalog.

Run as a module (`python -m tests.scraper.test_scrape_e2e CONFIG.json`) it is the scraper
process that the kill test starts and SIGKILLs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from rich.progress import Progress
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import selectinload

from catalog.characters import NewCharacter, add_character
from catalog.db import make_engine, session_scope, upgrade
from catalog.schema import (
    Character,
    Face,
    Image,
    ImageStatus,
    Label,
    LabelOrigin,
    Provenance,
    Review,
    Source,
)
from catalog.settings import DownloadSettings, Settings
from catalog.settings_sections import RedditSettings
from catalog.store import ImageStore
from scraper.outcomes import unfetched_key
from scraper.rejections import reject_code
from scraper.run import scrape
from scraper.summary import ScrapeSummary, summary_table
from tests.fixtures import reddit as reddit_fixtures

# The fake Reddit's fixtures (tests/fixtures/reddit.py), used by name below.
fake_reddit = reddit_fixtures.fake_reddit
reddit_world = reddit_fixtures.reddit_world
reddit_settings = reddit_fixtures.reddit_settings

ORIGIN_OF_KIND = {
    "subreddit": LabelOrigin.subreddit,
    "title_search": LabelOrigin.title_mention,
    "comment_links": LabelOrigin.comment_link,
}
REPO = Path(__file__).resolve().parents[2]


def scrape_settings(base: Settings, reddit: RedditSettings, hosts: dict[str, str]) -> Settings:
    download = DownloadSettings(
        allow_private_addresses=True,  # the fake serves on 127.0.0.1
        hosts=hosts,
        backoff_base=0.01,
        retries=1,
        connect_timeout=5,
        read_timeout=5,
    )
    return base.model_copy(update={"reddit": reddit, "download": download})


def add_world_characters(engine: Engine, expected: Any) -> dict[str, int]:
    ids = {}
    for name in expected.characters:
        series = expected.series_subreddit[name]
        ids[name] = add_character(
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
    return ids


def ordered(rows: Any) -> list[Any]:
    """Sorted by text: rows mix None and tuples, which do not compare."""
    return sorted(rows, key=repr)


def snapshot(engine: Engine) -> dict[str, Any]:
    """The catalog by natural keys (no row ids), to compare two catalogs."""

    with session_scope(engine) as session:
        sha_of = dict(session.execute(select(Image.id, Image.sha256)).all())
        names = dict(session.execute(select(Character.id, Character.name)).all())
        sources = {
            s.id: (names[s.character_id], str(s.kind), s.subreddit, s.query)
            for s in session.scalars(select(Source))
        }
        images = ordered(
            (
                i.sha256,
                str(i.status),
                reject_code(i.reject_reason),
                sha_of.get(i.duplicate_of_id) if i.duplicate_of_id else None,
                i.stored,
                i.has_face,
                i.phash,
                i.dhash,
            )
            for i in session.scalars(select(Image))
        )
        provenance = ordered(
            (sha_of[p.image_id], sources.get(p.source_id), p.post_id, p.comment_id, p.url)
            for p in session.scalars(select(Provenance))
        )
        faces = {f.id: (sha_of[f.image_id], f.index) for f in session.scalars(select(Face))}
        face_rows = ordered(
            (sha_of[f.image_id], f.index, f.x, f.y, f.w, f.h, f.crop_sha256, f.needs_review)
            for f in session.scalars(select(Face))
        )
        labels = ordered(
            (
                sha_of.get(label.image_id),
                faces.get(label.face_id),
                names.get(label.character_id),
                str(label.origin),
                label.weight,
            )
            for label in session.scalars(select(Label))
        )
        reviews = ordered(
            (r.kind, sha_of.get(r.image_id), names.get(r.character_id))
            for r in session.scalars(select(Review))
        )
        cursors = ordered((sources[s.id], s.cursor) for s in session.scalars(select(Source)))
    return {
        "images": images,
        "provenance": provenance,
        "faces": face_rows,
        "labels": labels,
        "reviews": reviews,
        "cursors": cursors,
    }


def file_requests(fake: Any, since: int = 0) -> list[Any]:
    from sandbox.reddit.world import SERVED_HOSTS

    return [r for r in fake.requests[since:] if r.host in SERVED_HOSTS and r.host != "api.imgur.com"]


@pytest.fixture
def scrape_env(settings: Settings, sqlite_engine: Engine, reddit_world: Any, reddit_settings: RedditSettings):
    ids = add_world_characters(sqlite_engine, reddit_world.expected)
    return scrape_settings(settings, reddit_settings, reddit_world.fake.hosts), ids


def check_against_expected(
    engine: Engine, expected: Any, ids: dict[str, int], summary: ScrapeSummary
) -> None:
    from tests.hostile_files import EXPECTED as HOSTILE_REASONS

    by_url = expected.by_url()
    roles = Counter(image.role for image in expected.images)
    with session_scope(engine) as session:
        images = {
            i.sha256: i
            for i in session.scalars(
                select(Image).options(selectinload(Image.provenance), selectinload(Image.faces))
            )
        }
        labels = session.execute(
            select(Label.image_id, Label.character_id, Label.origin).where(Label.face_id.is_(None))
        ).all()
        label_of = {image_id: (character, origin) for image_id, character, origin in labels}
        assert len(labels) == len(label_of), "one image-level label per image"

        for item in expected.images:
            key = item.sha256
            if item.role == "hostile" and key not in images:
                key = unfetched_key(item.url)  # refused before its bytes arrived whole
            image = images.get(key)
            assert image is not None, f"{item.role} {item.url} is not in the catalog"
            urls = {p.url for p in image.provenance}
            assert item.url in urls, f"{item.url}: provenance missing"
            if item.role == "image":
                assert image.stored and image.status in (ImageStatus.accepted, ImageStatus.review), item.url
                assert label_of[image.id] == (ids[item.character], str(ORIGIN_OF_KIND[item.kind])), item.url
            elif item.role == "exact_duplicate":
                original = by_url[item.duplicate_of]
                assert original.sha256 == item.sha256
                assert image.stored
            elif item.role == "near_duplicate":
                original = images[by_url[item.duplicate_of].sha256]
                assert image.status == ImageStatus.duplicate, item.url
                assert image.duplicate_of_id == original.id
                assert not image.stored
            elif item.role == "hostile":
                assert image.status == ImageStatus.rejected and not image.stored
                assert reject_code(image.reject_reason) == HOSTILE_REASONS[item.hostile_case], (
                    item.hostile_case
                )

        stored = session.scalar(select(func.count(Image.id)).where(Image.stored.is_(True)))
        distinct_images = {i.sha256 for i in expected.images if i.role == "image"}
        assert stored == len(distinct_images) == roles["image"], "every expected image stored exactly once"
        assert (
            session.scalar(select(func.count(Image.id)).where(Image.status == ImageStatus.duplicate))
            == (roles["near_duplicate"])
        )
        assert session.scalar(
            select(func.count(Image.id)).where(Image.status == ImageStatus.rejected)
        ) == len(
            {
                unfetched_key(i.url) if i.sha256 not in images else i.sha256
                for i in expected.images
                if i.role == "hostile"
            }
        )
        assert session.scalar(select(func.count(Provenance.id))) == len(expected.images)

    totals = summary.totals
    assert totals.seen == len(expected.images)
    assert totals.new == roles["image"]
    assert totals.duplicates == roles["exact_duplicate"]
    assert totals.near_duplicates == roles["near_duplicate"]
    assert sum(totals.rejected.values()) == roles["hostile"]
    assert totals.errors == 0 and all(row.scan_error is None for row in summary.rows)
    with session_scope(engine) as session:
        assert totals.faces == session.scalar(select(func.count(Face.id))) > 0


async def test_scrape_every_source_kind_exactly_once(
    scrape_env: tuple[Settings, dict[str, int]], sqlite_engine: Engine, reddit_world: Any
) -> None:
    settings, ids = scrape_env
    expected = reddit_world.expected
    assert len(expected.characters) == 3
    kinds = {image.kind for image in expected.images}
    assert kinds == {"subreddit", "title_search", "comment_links"}
    console = Console(file=io.StringIO(), width=160)
    with Progress(console=console) as progress:
        summary = await scrape(settings, sqlite_engine, progress=progress)
    check_against_expected(sqlite_engine, expected, ids, summary)
    assert len(summary.rows) == 9  # 3 characters x 3 source kinds
    console.print(summary_table(summary))
    rendered = console.file.getvalue()  # type: ignore[attr-defined]
    assert "Scrape summary" in rendered and "Near-dups" in rendered
    assert ImageStore.from_settings(settings).check(sqlite_engine, verify=True).clean

    # The second run lists the same posts and fetches no file.
    before = snapshot(sqlite_engine)
    requests_before = len(reddit_world.fake.requests)
    again = await scrape(settings, sqlite_engine)
    assert file_requests(reddit_world.fake, requests_before) == []
    assert again.totals.new == again.totals.duplicates == again.totals.near_duplicates == 0
    assert sum(again.totals.rejected.values()) == 0
    assert snapshot(sqlite_engine)["images"] == before["images"]
    assert snapshot(sqlite_engine)["provenance"] == before["provenance"]


async def test_dry_run_writes_nothing(
    scrape_env: tuple[Settings, dict[str, int]], sqlite_engine: Engine, reddit_world: Any
) -> None:
    settings, _ = scrape_env
    summary = await scrape(
        settings, sqlite_engine, dry_run=True, character=reddit_world.expected.characters[0]
    )
    assert summary.dry_run
    assert {row.character for row in summary.rows} == {reddit_world.expected.characters[0]}
    assert summary.totals.new == len(
        [i for i in reddit_world.expected.images if i.character == reddit_world.expected.characters[0]]
    )
    assert file_requests(reddit_world.fake) == []
    with session_scope(sqlite_engine) as session:
        assert session.scalar(select(func.count(Image.id))) == 0
        assert all(s.cursor is None for s in session.scalars(select(Source)))


async def test_killed_run_resumes_to_the_same_catalog(
    settings: Settings, reddit_world: Any, reddit_settings: RedditSettings, tmp_path: Path
) -> None:
    expected = reddit_world.expected
    hosts = reddit_world.fake.hosts

    def fresh_catalog(name: str) -> tuple[Settings, Engine]:
        data_dir = tmp_path / name
        data_dir.mkdir()
        local = scrape_settings(settings, reddit_settings, hosts).model_copy(update={"data_dir": data_dir})
        engine = make_engine(local.resolved_database_url)
        upgrade(engine)
        add_world_characters(engine, expected)
        return local, engine

    # The reference: one uninterrupted run.
    reference_settings, reference_engine = fresh_catalog("reference")
    await scrape(reference_settings, reference_engine)
    reference = snapshot(reference_engine)

    killed_settings, killed_engine = fresh_catalog("killed")
    config = tmp_path / "scrape.json"
    secrets = {
        key: value.get_secret_value()
        for key in ("client_id", "client_secret", "imgur_client_id")
        if (value := getattr(reddit_settings, key)) is not None
    }
    config.write_text(
        json.dumps({"settings": json.loads(killed_settings.model_dump_json()), "secrets": secrets})
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.scraper.test_scrape_e2e",
        str(config),
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        # Wait (polling the catalog, bounded) until a dozen images are committed, then kill.
        deadline = time.monotonic() + 60
        committed = 0
        while committed < 12:
            if process.returncode is not None:
                errors = await process.stderr.read() if process.stderr else b""
                pytest.fail(f"the scraper ended before it was killed: {errors.decode()[-2000:]}")
            assert time.monotonic() < deadline, "the scraper committed nothing within 60 s"
            await asyncio.sleep(0.02)  # let the fake Reddit (in this loop) answer the scraper
            with session_scope(killed_engine) as session:
                committed = session.scalar(select(func.count(Image.id))) or 0
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    partial = snapshot(killed_engine)
    assert 12 <= len(partial["images"]) < len(reference["images"]), "killed mid-run"

    # The next run continues where the killed one stopped.
    await scrape(killed_settings, killed_engine)
    store = ImageStore.from_settings(killed_settings)
    report = store.check(killed_engine, fix=True)  # at worst orphans of the uncommitted image
    assert report.missing == [] and report.corrupt == []
    assert snapshot(killed_engine) == reference
    assert store.check(killed_engine, verify=True).clean


def _main(config_path: str) -> None:
    """The scraper process of the kill test: one scrape with the given settings."""
    config = json.loads(Path(config_path).read_text())
    values = config["settings"]
    values["reddit"].update(config["secrets"])  # secrets serialise masked
    settings = Settings(**values, _env_file=None)
    engine = make_engine(settings.resolved_database_url)
    asyncio.run(scrape(settings, engine))


if __name__ == "__main__":
    _main(sys.argv[1])

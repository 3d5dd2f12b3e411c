"""The catalog does not depend on the order posts arrive in (issue 15 item 11): a near-duplicate
cluster keeps its best member whichever came first, and a picture claimed as two characters goes to
review on both sides instead of keeping whichever claim came first. The same posts are ingested in
several orders into fresh catalogs, which are compared row for row (ids replaced by content)."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from sqlalchemy import Engine, select
from sqlalchemy.orm import aliased

from catalog.characters import NewCharacter, add_character
from catalog.db import make_engine, session_scope, upgrade
from catalog.schema import Face, Image, ImageStatus, Label, LabelOrigin, Provenance, Review
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from media.faces import FaceDetector
from sandbox.characters.render import render_character
from scraper.candidates import ImageOrigin
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.run import scrape
from tests.scraper import small_world
from tests.scraper.small_world import ClaimsWorld
from tests.scraper.test_ingest import SPECS, jpeg, near_copy

claims = small_world.claims
claims_settings = small_world.claims_settings


def _picture(spec: int, variant: int) -> PILImage.Image:
    image, _ = render_character(SPECS[spec], np.random.default_rng([5, spec, variant]))
    return image.convert("RGB")


def _resized(image: PILImage.Image, factor: float) -> PILImage.Image:
    return image.resize((round(image.width * factor), round(image.height * factor)))


@dataclass(frozen=True)
class Post:
    data: bytes
    url: str
    character: int
    origin: LabelOrigin


def _posts() -> list[Post]:
    big = _resized(_picture(0, 7), 1.5)
    original = jpeg(big, quality=95)
    gallery = jpeg(_picture(1, 3))
    other = jpeg(_picture(2, 4))
    return [
        # One picture of character 0, its quality-40 re-encode and a 60% resize.
        Post(original, "https://i.redd.it/original.jpg", 0, LabelOrigin.title_mention),
        Post(jpeg(big, quality=40), "https://i.redd.it/q40.jpg", 0, LabelOrigin.subreddit),
        Post(jpeg(_resized(big, 0.6)), "https://i.redd.it/small.jpg", 0, LabelOrigin.subreddit),
        # One gallery picture on character 1's subreddit and in a title naming character 2.
        Post(gallery, "https://i.redd.it/gallery-own.jpg", 1, LabelOrigin.subreddit),
        Post(gallery, "https://i.redd.it/gallery-title.jpg", 2, LabelOrigin.title_mention),
        # A picture of character 2 and a near copy of it posted as character 1.
        Post(other, "https://i.redd.it/other.jpg", 2, LabelOrigin.subreddit),
        Post(near_copy(other), "https://i.redd.it/other-edit.jpg", 1, LabelOrigin.title_mention),
    ]


def _ingest(root: Path, cascade_path: Path, posts: list[Post]) -> dict[str, Any]:
    settings = Settings(data_dir=root, faces={"cascade_path": cascade_path}, _env_file=None)
    engine = make_engine(f"sqlite:///{root / 'namae.db'}")
    upgrade(engine)
    store = ImageStore(settings.image_store_dir)
    characters = [add_character(engine, NewCharacter(name=spec.name)) for spec in SPECS]
    detector = FaceDetector(cascade_path, settings.faces)
    ingestor = Ingestor(engine, store, settings, detector, HashIndex.load(engine))
    for post in posts:
        origin = ImageOrigin(
            url=post.url,
            source_id=None,
            character_id=characters[post.character],
            origin=post.origin,
            post_id=post.url.rsplit("/", 1)[1].split(".")[0],
        )
        ingestor.ingest_bytes(post.data, origin)
    try:
        return _snapshot(engine, store)
    finally:
        engine.dispose()


def _snapshot(engine: Any, store: ImageStore) -> dict[str, Any]:
    """Every row the ingest writes, with ids replaced by the image's sha256 (and the face's index)."""
    kept = aliased(Image)
    with session_scope(engine) as session:
        images = {
            row.sha256: (str(row.status), dup, row.stored, row.has_face, row.width, row.height)
            for row, dup in session.execute(
                select(Image, kept.sha256).outerjoin(kept, Image.duplicate_of_id == kept.id)
            )
        }
        provenance = sorted(
            tuple(row)
            for row in session.execute(
                select(Image.sha256, Provenance.url, Provenance.post_id, Provenance.character_id).join(Image)
            )
        )
        faces = sorted(
            tuple(row)
            for row in session.execute(
                select(Image.sha256, Face.index, Face.x, Face.y, Face.w, Face.h, Face.crop_sha256).join(Image)
            )
        )
        labels = sorted(
            (
                tuple(row)
                for row in session.execute(
                    select(Image.sha256, Face.index, Label.character_id, Label.origin, Label.weight)
                    .join(Image, Label.image_id == Image.id)
                    .outerjoin(Face, Label.face_id == Face.id)
                )
            ),
            key=repr,
        )
        reviews = sorted(
            tuple(row)
            for row in session.execute(
                select(Image.sha256, Review.kind, Review.reason, Review.character_id).join(Image)
            )
        )
    files = set(store.names())
    return {
        "images": images,
        "provenance": provenance,
        "faces": faces,
        "labels": labels,
        "reviews": reviews,
        "files": files,
    }


def test_the_catalog_is_the_same_whatever_order_the_posts_arrive_in(
    tmp_path: Path, cascade_path: Path
) -> None:
    posts = _posts()
    shuffled = posts[:]
    random.Random(3).shuffle(shuffled)
    orders = {"posted": posts, "reversed": posts[::-1], "shuffled": shuffled}
    catalogs = {name: _ingest(tmp_path / name, cascade_path, order) for name, order in orders.items()}

    for name in ("reversed", "shuffled"):
        for table, rows in catalogs["posted"].items():
            assert catalogs[name][table] == rows, (name, table)

    # And what they hold is what the issue expects.
    catalog = catalogs["posted"]
    original, q40, small = (sha256_of(p.data) for p in posts[:3])
    assert catalog["images"][original][:3] == (str(ImageStatus.accepted), None, True)
    assert catalog["images"][q40][:3] == (str(ImageStatus.duplicate), original, False)
    assert catalog["images"][small][:3] == (str(ImageStatus.duplicate), original, False)
    assert {q40, small}.isdisjoint(catalog["files"])
    # The cluster's claims all land on the original: its own title mention and the subreddit's.
    assert {
        (origin, character)
        for sha, face, character, origin, _ in catalog["labels"]
        if sha == original and face is None
    } == {
        (LabelOrigin.title_mention, 1),
        (LabelOrigin.subreddit, 1),
    }
    gallery = sha256_of(posts[3].data)
    assert catalog["images"][gallery][0] == str(ImageStatus.review)
    assert {
        (origin, character)
        for sha, face, character, origin, _ in catalog["labels"]
        if sha == gallery and face is None
    } == {
        (LabelOrigin.subreddit, 2),
        (LabelOrigin.title_mention, 3),
    }
    assert [(kind, character) for sha, kind, _, character in catalog["reviews"] if sha == gallery] == [
        ("same_image_other_character", 2),
        ("same_image_other_character", 3),
    ]
    other, edit = sha256_of(posts[5].data), sha256_of(posts[6].data)
    assert catalog["images"][other][0] == catalog["images"][edit][0] == str(ImageStatus.review)


async def test_an_aborted_scan_and_its_rerun_end_like_a_clean_run(
    claims: ClaimsWorld,
    claims_settings: Callable[..., Settings],
    sqlite_engine: Engine,
    tmp_path: Path,
) -> None:
    """Through the fake Reddit: the newest page of character 0's subreddit holds a re-encode and a
    resize, an older page the original and a gallery picture that character 1's title search also
    finds. A scan that gives up on the older page ingests them in another order on its rerun."""
    with PILImage.open(io.BytesIO(claims.picture(0, 1))) as picture:
        big = _resized(picture.convert("RGB"), 1.5)
    gallery = claims.picture(1, 2)
    claims.own_post(0, jpeg(big, quality=95))  # oldest: the original ...
    claims.own_post(0, gallery)
    claims.own_post(0, claims.picture(0, 3))
    claims.own_post(0, jpeg(big, quality=40))  # ... newest page: its edits
    claims.own_post(0, jpeg(_resized(big, 0.6)))
    claims.own_post(0, claims.picture(0, 4))
    claims.title_post(1, gallery)
    settings = claims_settings()
    clean = settings.model_copy(update={"data_dir": tmp_path / "clean"})
    clean_engine = make_engine(f"sqlite:///{tmp_path / 'clean.db'}")
    upgrade(clean_engine)
    for engine in (sqlite_engine, clean_engine):
        claims.add_characters(engine)

    assert (await scrape(clean, clean_engine)).totals.errors == 0
    # Character 0's subreddit fails on every later page: its first page only, cursor kept.
    own = f"/r/{claims.subs[0]}"
    claims.fake.fail_next(18, 503, path_prefix=own, query_has="after")
    aborted = await scrape(settings, sqlite_engine)
    assert aborted.rows[0].scan_error is not None and aborted.rows[0].seen == 3
    rerun = await scrape(settings, sqlite_engine)
    assert rerun.error is None and rerun.rows[0].scan_error is None

    expected = _snapshot(clean_engine, ImageStore.from_settings(clean))
    got = _snapshot(sqlite_engine, ImageStore.from_settings(settings))
    clean_engine.dispose()
    for table, rows in expected.items():
        assert got[table] == rows, table

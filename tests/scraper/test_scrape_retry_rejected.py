"""Rejections that follow from settings or from the server's answer are tried again (issue 15
item 12): automatically once the setting they depended on changed, all of them on request
(`retry_rejected`, the CLI's --retry-rejected); rejections of the bytes themselves stay final.
Through the fake Reddit, the real asyncpraw and the safe fetcher."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus, Label, Provenance
from catalog.settings import Settings
from scraper.rejections import reject_code
from scraper.run import scrape
from tests.scraper import small_world
from tests.scraper.small_world import ClaimsWorld

claims = small_world.claims
claims_settings = small_world.claims_settings

NOT_AN_IMAGE = b"<html>this page moved</html>" * 20


def _rows(engine: Engine) -> dict[str, tuple[int, str, str]]:
    """url -> (image id, status, reject code) for every provenance row."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(Provenance.url, Image.id, Image.status, Image.reject_reason).join(Image)
        ).all()
    return {url: (image_id, str(status), reject_code(reason)) for url, image_id, status, reason in rows}


def _file_requests(claims: ClaimsWorld, url: str) -> int:
    path = url.split(str(claims.world.port), 1)[1]
    return sum(1 for r in claims.fake.requests if r.path == path and r.host == "i.redd.it")


def _blocking(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"download": settings.download.model_copy(update={"allow_private_addresses": False})}
    )


async def test_rejections_are_tried_again_when_their_setting_changes(
    claims: ClaimsWorld, claims_settings: Callable[..., Settings], sqlite_engine: Engine
) -> None:
    first = claims.own_post(0, claims.picture(0, 1))
    second = claims.own_post(0, claims.picture(0, 2))
    other = claims.own_post(1, claims.picture(1, 1))
    junk = claims.own_post(1, NOT_AN_IMAGE)
    claims.add_characters(sqlite_engine)
    allowed = claims_settings()

    blocked = await scrape(_blocking(allowed), sqlite_engine)
    assert blocked.totals.rejected == {"blocked_address": 4}
    assert blocked.totals.new == 0

    # The fake lives on 127.0.0.1: allowing private addresses is the change that matters.
    again = await scrape(allowed, sqlite_engine)

    retried = again.rows[0]
    assert (retried.character, retried.seen, retried.new) == ("(earlier)", 4, 3)
    assert retried.rejected == {"not_an_image": 1}
    rows = _rows(sqlite_engine)
    assert {url: rows[url][1] for url in (first, second, other)} == dict.fromkeys(
        (first, second, other), "accepted"
    )
    assert rows[junk][1:] == ("rejected", "not_an_image")
    with session_scope(sqlite_engine) as session:  # labelled as the sources said
        labels = session.execute(
            select(Provenance.url, Label.character_id)
            .join(Label, Label.image_id == Provenance.image_id)
            .where(Label.face_id.is_(None))
        ).all()
    first_id, second_id = (claims.character_id(sqlite_engine, i) for i in (0, 1))
    assert dict(labels) == {first: first_id, second: first_id, other: second_id}

    # Same settings, and the bytes' own verdict: nothing is tried again, even on request.
    junk_requests = _file_requests(claims, junk)
    third = await scrape(allowed, sqlite_engine, retry_rejected=True)
    assert all(row.character != "(earlier)" for row in third.rows)
    assert _file_requests(claims, junk) == junk_requests
    assert _rows(sqlite_engine) == rows


async def test_retry_rejected_tries_what_no_setting_explains(
    claims: ClaimsWorld, claims_settings: Callable[..., Settings], sqlite_engine: Engine
) -> None:
    missing = claims.world.url("i.redd.it", "/later.jpg")  # 404 until the file is there
    claims.world.add_post(claims.subs[0], "art", url=missing, post_hint="image")
    claims.add_characters(sqlite_engine)
    settings = claims_settings()

    first = await scrape(settings, sqlite_engine)
    assert first.totals.rejected == {"http_404": 1}
    claims.world.add_file("i.redd.it", "/later.jpg", claims.picture(0, 3))

    plain = await scrape(settings, sqlite_engine)  # no setting changed: the rejection stays
    assert plain.totals.seen == 0 and _rows(sqlite_engine)[missing][1:] == ("rejected", "http_404")

    asked = await scrape(settings, sqlite_engine, retry_rejected=True)

    assert asked.rows[0].new == 1
    assert _rows(sqlite_engine)[missing][1] == "accepted"
    with session_scope(sqlite_engine) as session:
        assert session.scalars(select(Image.status)).all() == [ImageStatus.accepted]

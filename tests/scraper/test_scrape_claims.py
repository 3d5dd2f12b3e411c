"""Pictures claimed by more than one character, through the fake Reddit and the real asyncpraw:
what the summary counts for the moderators' queue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from catalog.characters import NewCharacter, add_character
from catalog.db import session_scope
from catalog.schema import Review
from catalog.settings import RedditSettings, Settings
from sandbox.reddit import FakeReddit
from scraper.run import scrape
from tests.fixtures.reddit import _cached_render, world_characters
from tests.scraper.test_ingest import near_copy
from tests.scraper.test_scrape_e2e import scrape_settings


class ClaimsWorld:
    """Two characters, each with its own subreddit and a title search in a shared series one."""

    def __init__(self, fake: FakeReddit) -> None:
        self.fake = fake
        self.world = fake.world
        self.world.page_size = 3  # several pages per listing
        self.specs = world_characters()[:2]
        self.names = [spec.name for spec in self.specs]
        self.subs = ["FirstOwnSub", "SecondOwnSub"]
        self.series = "SharedSeries"

    def picture(self, character: int, variant: int) -> bytes:
        return _cached_render(self.names[character], variant)

    def own_post(self, character: int, data: bytes, title: str = "art") -> str:
        url = self.world.add_file("i.redd.it", f"/{self.world.next_id()}.jpg", data)
        self.world.add_post(self.subs[character], title, url=url, post_hint="image")
        return url

    def title_post(self, character: int, data: bytes) -> str:
        url = self.world.add_file("i.redd.it", f"/{self.world.next_id()}.jpg", data)
        self.world.add_post(self.series, f"{self.names[character]} fanart", url=url, post_hint="image")
        return url

    def add_characters(self, engine: Engine, order: tuple[int, ...] = (0, 1)) -> None:
        for index in order:
            add_character(
                engine,
                NewCharacter(
                    name=self.names[index],
                    subreddits=[self.subs[index]],
                    title_subreddits=[self.series],
                ),
            )


@pytest.fixture
def claims(fake_reddit: FakeReddit) -> ClaimsWorld:
    return ClaimsWorld(fake_reddit)


@pytest.fixture
def claims_settings(
    settings: Settings, reddit_settings: RedditSettings, fake_reddit: FakeReddit
) -> Callable[..., Settings]:
    def make(**updates: Any) -> Settings:
        return scrape_settings(settings, reddit_settings, fake_reddit.hosts).model_copy(update=updates)

    return make


async def test_the_review_column_counts_every_review_row_written(
    claims: ClaimsWorld, claims_settings: Callable[..., Settings], sqlite_engine: Engine
) -> None:
    """Issue 15 item 14: the same bytes claimed by another character wrote a Review row that the
    summary did not count."""
    first, second = claims.picture(0, 1), claims.picture(0, 2)
    claims.own_post(0, first)
    claims.own_post(0, second)
    claims.title_post(1, first)  # the same bytes, claimed by the second character
    claims.title_post(1, near_copy(second))  # a near copy, claimed by the second character
    claims.add_characters(sqlite_engine)

    summary = await scrape(claims_settings(), sqlite_engine)

    with session_scope(sqlite_engine) as session:
        written = session.scalar(select(func.count(Review.id)))
    assert written and summary.totals.review == written
    rows = {(row.character, row.source.split()[0]): row for row in summary.rows}
    second_title = rows[(claims.names[1], "title_search")]
    assert second_title.duplicates == 1
    assert second_title.review >= 2  # the exact duplicate's review and the near copy's

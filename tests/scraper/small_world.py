"""A small scripted world on the fake Reddit for scrape tests: two characters, each with its own
subreddit and a title search in one shared series subreddit, and pictures placed by the test."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from catalog.characters import NewCharacter, add_character, find_character
from catalog.db import session_scope
from catalog.settings import Settings
from catalog.settings_sections import RedditSettings
from sandbox.reddit import FakeReddit
from tests.fixtures.reddit import _cached_render, world_characters
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

    def character_id(self, engine: Engine, character: int) -> int:
        with session_scope(engine) as session:
            return find_character(session, self.names[character]).id

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

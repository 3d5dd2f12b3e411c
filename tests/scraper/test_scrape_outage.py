"""Reddit down for a whole run (issue 15 item 10): the run's retrying is bounded as a whole, an
unreachable Reddit stops it at once, and the catalog tells the last attempt from the last success.
Through the fake Reddit and the real asyncpraw; the CLI's side is in tests/namae/test_cli.py."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select

from catalog.characters import list_characters
from catalog.db import session_scope
from catalog.schema import Source
from catalog.settings import Settings
from scraper.run import scrape
from tests.scraper import small_world
from tests.scraper.small_world import ClaimsWorld

claims = small_world.claims
claims_settings = small_world.claims_settings


def _with_reddit(settings: Settings, **updates: object) -> Settings:
    return settings.model_copy(update={"reddit": settings.reddit.model_copy(update=updates)})


async def test_a_run_stops_when_its_retry_budget_is_spent(
    claims: ClaimsWorld, claims_settings: Callable[..., Settings], sqlite_engine: Engine
) -> None:
    claims.own_post(0, claims.picture(0, 1))
    claims.own_post(1, claims.picture(1, 1))
    claims.add_characters(sqlite_engine)  # four sources
    claims.fake.fail_next(500, 503, path_prefix="/r/")  # Reddit answers 503 all along
    settings = _with_reddit(claims_settings(), retry_budget_s=0.0)

    summary = await scrape(settings, sqlite_engine)

    assert summary.error is not None and "kept failing" in summary.error
    # The first failure spent the budget: one source tried (asyncprawcore retries a 503 twice
    # itself), none of the other three; each would have made up to 6 x 3 requests before.
    assert len(claims.fake.api_requests("/r/")) <= 3
    assert len(summary.rows) == 1 and summary.rows[0].scan_error == summary.error
    with session_scope(sqlite_engine) as session:
        sources = session.scalars(select(Source).order_by(Source.id)).all()
        assert sources[0].last_attempt_at is not None and sources[0].last_success_at is None
        assert all(s.last_attempt_at is None for s in sources[1:])


async def test_unreachable_reddit_stops_the_run_and_is_no_success(
    claims: ClaimsWorld, claims_settings: Callable[..., Settings], sqlite_engine: Engine
) -> None:
    claims.own_post(0, claims.picture(0, 1))
    claims.title_post(0, claims.picture(0, 2))
    claims.add_characters(sqlite_engine)
    settings = claims_settings()
    first = await scrape(settings, sqlite_engine)
    assert first.error is None and first.totals.new == 2
    before = {c.name: c for c in list_characters(sqlite_engine)}
    assert all(c.last_scrape == c.last_attempt for c in before.values())

    await claims.fake.stop()  # connections are now refused
    again = await scrape(settings, sqlite_engine)

    assert again.error is not None and "cannot be reached" in again.error
    assert len(again.rows) == 1
    after = {c.name: c for c in list_characters(sqlite_engine)}
    first_name = claims.names[0]
    assert after[first_name].last_scrape == before[first_name].last_scrape  # no new success
    assert after[first_name].last_attempt is not None

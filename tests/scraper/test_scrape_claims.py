"""Pictures claimed by more than one character, through the fake Reddit and the real asyncpraw:
what the summary counts for the moderators' queue."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, func, select

from catalog.db import session_scope
from catalog.schema import Review
from catalog.settings import Settings
from scraper.run import scrape
from tests.scraper import small_world
from tests.scraper.small_world import ClaimsWorld
from tests.scraper.test_ingest import near_copy

claims = small_world.claims
claims_settings = small_world.claims_settings


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

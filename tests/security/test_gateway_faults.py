"""Gateway faults with the real bot (NamaeBot on unmodified discord.py) against the fake Discord.

- The connection drops: discord.py RESUMEs, the fake replays what was dispatched meanwhile, and
  the bot answers the picture posted while it was away.
- The connection drops while an answer is being worked on: the answer still goes out, once.
- Discord asks for a reconnect (op 7): the bot RESUMEs and keeps answering.
- The session is invalidated for good: the bot IDENTIFYs afresh and answers the next picture.

In every case each posted picture gets exactly one reply: nothing is lost to a RESUME and nothing
replayed is answered twice.

discord.py sleeps 5 s in `Client.before_identify_hook` before every re-IDENTIFY (Discord's pacing
of IDENTIFYs); the tests replace that documented hook with one that returns at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from bot.app import NamaeBot
from catalog.db import session_scope
from catalog.schema import Prediction
from sandbox.discord.running import connected
from tests.fixtures.bot import BotHarness, jpeg, make_harness
from tests.fixtures.discord import DiscordWorld

REPLY_TIMEOUT = 30.0


async def identify_at_once(shard_id: int | None, *, initial: bool = False) -> None:
    """Replaces discord.py's 5 s wait before a re-IDENTIFY (one shard, one bot: nothing to pace)."""


@asynccontextmanager
async def running_bot(harness: BotHarness) -> AsyncIterator[tuple[NamaeBot, asyncio.Event]]:
    """The harness's bot, connected, with the IDENTIFY pause removed; yields it and an event set
    on every `on_resumed`."""
    bot = harness.make_bot()
    bot.before_identify_hook = identify_at_once  # type: ignore[method-assign]
    resumed = asyncio.Event()

    async def on_resumed() -> None:
        resumed.set()

    bot.add_listener(on_resumed)
    async with connected(bot, harness.fake) as ready:
        harness.bot = ready
        try:
            yield ready, resumed
        finally:
            harness.bot = None


@pytest.fixture
async def quiet_harness(
    discord_world: DiscordWorld,
    data_dir: Path,
    cascade_path: Path,
    sqlite_engine: Engine,
    model_source: tuple[Path, list[str]],
) -> BotHarness:
    """A harness whose bot is started by the test itself (see `running_bot`)."""
    return await make_harness(discord_world, data_dir, cascade_path, sqlite_engine, model_source)


async def post_picture(harness: BotHarness, seed: int) -> int:
    return await harness.post((f"pic{seed}.jpg", jpeg(seed % 4, seed), "image/jpeg"))


def assert_one_answer_each(harness: BotHarness, posted: list[int]) -> None:
    replies = [m for m in harness.fake.sent_messages if m.reply_to is not None]
    per_message = {message: [r.id for r in replies if r.reply_to == message] for message in posted}
    assert all(len(ids) == 1 for ids in per_message.values()), per_message
    assert len(replies) == len(posted), [r.reply_to for r in replies]
    with session_scope(harness.engine) as session:
        answered = set(session.scalars(select(Prediction.message_id).distinct()))
        assert answered == set(posted)
        # One reply per message: every prediction of a message points at that one reply.
        assert session.scalar(select(func.count(func.distinct(Prediction.reply_message_id)))) == len(posted)


async def test_dropped_connection_resumes_and_answers_what_was_missed(quiet_harness: BotHarness) -> None:
    harness, fake = quiet_harness, quiet_harness.fake
    async with running_bot(harness) as (_bot, resumed):
        before = await post_picture(harness, 1)
        assert "%" in (await harness.reply_to(before)).text()

        assert await fake.drop_connection() == 1
        missed = await post_picture(harness, 2)  # dispatched while no socket is open
        await asyncio.wait_for(resumed.wait(), REPLY_TIMEOUT)
        # an answer about the missed picture's face (which kind is the tiny model's business)
        assert "face 1.1:" in (await harness.reply_to(missed, timeout=REPLY_TIMEOUT)).text()
        assert fake.resume_count == 1 and fake.identify_count == 1
        # Only the event sent after the drop came again: the answered one was not replayed.
        assert fake.resumes[0].replayed == 1

        resumed.clear()
        in_flight = await post_picture(harness, 3)
        assert await fake.drop_connection() == 1  # while that picture is being answered
        await asyncio.wait_for(resumed.wait(), REPLY_TIMEOUT)
        await harness.reply_to(in_flight, timeout=REPLY_TIMEOUT)

        resumed.clear()
        assert await fake.request_reconnect() == 1  # op 7: close and RESUME
        await asyncio.wait_for(resumed.wait(), REPLY_TIMEOUT)
        after = await post_picture(harness, 4)
        await harness.reply_to(after, timeout=REPLY_TIMEOUT)
        assert fake.resume_count == 3 and fake.identify_count == 1
        assert_one_answer_each(harness, [before, missed, in_flight, after])


async def test_invalid_session_reidentifies_and_the_bot_answers_again(quiet_harness: BotHarness) -> None:
    harness, fake = quiet_harness, quiet_harness.fake
    async with running_bot(harness) as (bot, _resumed):
        before = await post_picture(harness, 5)
        await harness.reply_to(before)

        assert await fake.invalidate_session(resumable=False) == 1
        await fake.wait_until(lambda: fake.identify_count == 2 or None, what="a second IDENTIFY")
        await fake.wait_until_ready()
        await asyncio.wait_for(bot.wait_until_ready(), REPLY_TIMEOUT)
        after = await post_picture(harness, 6)
        assert "%" in (await harness.reply_to(after, timeout=REPLY_TIMEOUT)).text()
        # The same picture again, posted anew, is a new message and gets its own answer.
        again = await post_picture(harness, 6)
        await harness.reply_to(again, timeout=REPLY_TIMEOUT)
        assert fake.resume_count == 0
        assert_one_answer_each(harness, [before, after, again])


async def test_resumable_invalid_session_resumes_without_losing_a_message(quiet_harness: BotHarness) -> None:
    harness, fake = quiet_harness, quiet_harness.fake
    async with running_bot(harness) as (_bot, resumed):
        before = await post_picture(harness, 7)
        await harness.reply_to(before)
        assert await fake.invalidate_session(resumable=True) == 1
        await asyncio.wait_for(resumed.wait(), REPLY_TIMEOUT)
        after = await post_picture(harness, 8)
        await harness.reply_to(after, timeout=REPLY_TIMEOUT)
        assert fake.identify_count == 1 and fake.resume_count == 1
        assert_one_answer_each(harness, [before, after])

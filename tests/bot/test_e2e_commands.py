"""Slash commands and the context menu end to end: permissions, moderation, settings, privacy."""

from __future__ import annotations

from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.schema import Character, Job, Prediction, Vote
from sandbox.discord import InteractionHandle
from tests.fixtures.bot import BotHarness, jpeg


def _count(harness: BotHarness, table, *where) -> int:
    with session_scope(harness.engine) as session:
        return session.scalar(select(func.count()).select_from(table).where(*where)) or 0


async def _answer(handle: InteractionHandle) -> str:
    """The text the member sees: the response message, or the first follow-up after a defer."""
    first = await handle.response()
    assert first.accepted and not first.late, f"answered after {first.delay:.2f}s"
    if first.type == 5:  # deferred: the answer is a follow-up
        return (await handle.followups(1, timeout=30))[0].text()
    return (await handle.wait_original()).text()


async def _slash(harness: BotHarness, member: int, command: str, options=None, **kw) -> str:
    world = harness.world
    handle = await harness.fake.slash(world.guild.id, world.channel_id, member, command, options or {}, **kw)
    return await _answer(handle)


async def test_member_without_permission_is_refused_and_nothing_written(harness: BotHarness) -> None:
    characters, jobs = _count(harness, Character), _count(harness, Job)
    text = await _slash(
        harness, harness.world.member_id, "character add", {"name": "Intruder", "subreddits": "intruder"}
    )
    assert "Manage Server" in text
    for command in ("rescrape", "retrain", "jobs", "model info", "corrections review", "settings threshold"):
        assert "Manage Server" in await _slash(harness, harness.world.member_id, command)
    assert (_count(harness, Character), _count(harness, Job)) == (characters, jobs)


async def test_moderator_adds_character_and_rescrape_shows_in_jobs(harness: BotHarness) -> None:
    mod = harness.world.moderator_id
    text = await _slash(
        harness,
        mod,
        "character add",
        {"name": "Yotsuba Nakano", "aliases": "Yotsuba, Yotsu", "subreddits": "Yotsubros",
         "title_subreddits": "5ToubunNoHanayome", "series": "Quintessential Quintuplets"},
    )  # fmt: skip
    assert "Yotsuba Nakano" in text and "queued" in text
    rescrape = await _slash(harness, mod, "rescrape", {"character": "yotsuba"})
    assert "queued as job" in rescrape
    jobs = await _slash(harness, mod, "jobs")
    assert jobs.count("scrape Yotsuba Nakano") == 2 and "queued" in jobs
    info = await _slash(harness, mod, "character info", {"name": "Yotsuba"})
    assert "r/Yotsubros" in info and "Last scrape: never" in info
    choices = await harness.fake.autocomplete(
        harness.world.guild.id, harness.world.channel_id, mod, "character info", {"name": "yots"}, "name"
    )
    assert [c["value"] for c in choices] == ["Yotsuba Nakano"]


async def test_bad_character_input_is_refused_plainly(harness: BotHarness) -> None:
    mod = harness.world.moderator_id
    before = (_count(harness, Character), _count(harness, Job))
    bad = await _slash(harness, mod, "character add", {"name": "Nino", "subreddits": "not a subreddit!"})
    assert "invalid subreddit" in bad.lower()
    unknown = await _slash(harness, mod, "character info", {"name": "Nobody At All"})
    assert "no character named" in unknown.lower()
    assert "no character named" in (await _slash(harness, mod, "rescrape", {"character": "ghost"})).lower()
    assert (_count(harness, Character), _count(harness, Job)) == before


async def test_configured_mod_role_grants_moderation(harness: BotHarness) -> None:
    world = harness.world
    helper_role = world.guild.add_role("helpers", 0)
    helper = world.guild.add_member("helper", roles=[helper_role])
    assert "Manage Server" in await _slash(harness, helper, "jobs")
    await _slash(harness, world.moderator_id, "settings mod-role", {"role": helper_role})
    assert "Jobs" in await _slash(harness, helper, "jobs")


async def test_settings_turn_channels_on_and_off(harness: BotHarness) -> None:
    world = harness.world
    quiet = world.guild.add_channel("quiet")
    ignored = await harness.fake.post_message(
        quiet, world.member_id, "", attachments=[("q.jpg", jpeg(0, 3), "image/jpeg")]
    )
    # The bot has decided about it (no reply: the channel is off) before the channel is turned on.
    assert await harness.bot.answered.wait(ignored) is None
    text = await _slash(harness, world.moderator_id, "settings channels", {"channel": quiet, "enabled": True})
    assert "on in #quiet" in text
    posted = await harness.fake.post_message(
        quiet, world.member_id, "", attachments=[("q.jpg", jpeg(0, 4), "image/jpeg")]
    )
    await harness.reply_to(posted)
    assert len([m for m in harness.fake.messages_in(quiet) if m.reply_to]) == 1  # the first was ignored
    assert "0.80" in await _slash(harness, world.moderator_id, "settings threshold", {"value": 0.8})


async def test_classify_command_and_bad_attachments(harness: BotHarness) -> None:
    member = harness.world.member_id
    text = await _slash(
        harness, member, "classify", attachments={"image": ("c.jpg", jpeg(1, 5), "image/jpeg")}
    )
    assert "Who is that?" in text and "%" in text
    not_image = await _slash(
        harness, member, "classify", attachments={"image": ("notes.txt", b"hello there", "text/plain")}
    )
    assert "not an image" in not_image
    huge = b"\xff\xd8\xff" + b"0" * (harness.settings.discord.max_image_bytes + 10)
    assert "too large" in await _slash(
        harness, member, "classify", attachments={"image": ("big.jpg", huge, "image/jpeg")}
    )
    predictions = _count(harness, Prediction)
    private = await _slash(
        harness,
        member,
        "classify",
        {"private": True},
        attachments={"image": ("p.jpg", jpeg(2, 5), "image/jpeg")},
    )
    assert "Who is that?" in private
    assert _count(harness, Prediction) == predictions  # private answers keep nothing


async def test_identify_context_menu(harness: BotHarness) -> None:
    world = harness.world
    elsewhere = world.guild.add_channel("off-topic")  # classification is off here
    message = await harness.fake.post_message(
        elsewhere, world.member_id, "", attachments=[("m.png", jpeg(3, 6), "image/jpeg")]
    )
    handle = await harness.fake.context_menu(
        world.guild.id, elsewhere, world.moderator_id, "Identify character", message
    )
    text = await _answer(handle)
    assert "Who is that?" in text
    followup = (await handle.followups(1))[0]
    assert followup.ephemeral and any(c.startswith("namae:fix:") for c in followup.custom_ids())


async def test_privacy_and_forget(harness: BotHarness) -> None:
    world = harness.world
    assert "180 days" in await _slash(harness, world.member_id, "privacy")
    reply = await harness.reply_to(await harness.post(("f.jpg", jpeg(0, 13), "image/jpeg")))
    pid = int(next(c for c in reply.custom_ids() if c.startswith("namae:right:")).rsplit(":", 1)[1])
    await harness.fake.click(reply.id, f"namae:right:{pid}", world.member_id)
    await harness.fake.wait_for_edit(reply.id)
    refused = await _slash(harness, world.member_id, "forget", {"member": world.moderator_id})
    assert "Only moderators" in refused
    done = await _slash(harness, world.moderator_id, "forget", {"member": world.member_id})
    assert "1 votes, 1 predictions, 1 pictures" in done
    assert (
        _count(harness, Vote) == 0
        and _count(harness, Prediction, Prediction.author_id == world.member_id) == 0
    )

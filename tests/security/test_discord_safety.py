"""Discord safety: no mentions, inert names, permission checks that hold on our side, exactly one
vote per member under spam, links that are never fetched, deleted messages and predictions."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bot.render import safe_name
from catalog.db import session_scope
from catalog.schema import Character, Image, Job, Prediction, Vote
from tests.fixtures.bot import (
    BotHarness,
    jpeg,
    make_harness,
)

EVIL = [
    "@everyone **Boss** discord.gg/raid",
    "<@{member}> ||spoiler|| `code`",
    "@here https://discord.com/invite/abc",
    "<@&{role}> __under__ ~~strike~~ > quote",
]


def test_safe_name_defuses_markdown_mentions_and_invites() -> None:
    text = safe_name("@everyone **x** <@123> <@&9> <#5> discord.gg/abc https://evil.example")
    assert "@everyone" not in text and "<@123>" not in text and "<@&9>" not in text and "<#5>" not in text
    assert "discord.gg/" not in text and "https://" not in text
    assert "\\*\\*x\\*\\*" in text
    assert len(safe_name("a" * 500)) <= 80


async def test_replies_never_mention_and_names_are_escaped(harness: BotHarness) -> None:
    world = harness.world
    with session_scope(harness.engine) as session:
        for i, character in enumerate(session.scalars(select(Character).order_by(Character.id))):
            character.name = EVIL[i % len(EVIL)].format(member=world.member_id, role=world.moderator_role_id)
    assert harness.bot is not None
    harness.bot.names.forget()
    reply = await harness.reply_to(await harness.post(("e.jpg", jpeg(0, 30), "image/jpeg")))
    text = reply.text()
    assert "@everyone" not in text and "@here" not in text
    assert f"<@{world.member_id}>" not in text and f"<@&{world.moderator_role_id}>" not in text
    assert "discord.gg/" not in text and "discord.com/invite" not in text
    assert "**Boss**" not in text and "||spoiler||" not in text
    # The votes line names characters too.
    pid = next(c for c in reply.custom_ids() if c.startswith("namae:right:")).rsplit(":", 1)[1]
    await harness.fake.click(reply.id, f"namae:right:{pid}", world.member_id)
    edited = await harness.fake.wait_for_edit(reply.id)
    assert "@everyone" not in edited.content and "<@" not in edited.content
    for message in harness.fake.sent_messages:
        assert message.allowed_mentions is not None and message.allowed_mentions.get("parse") == [], message


async def test_permission_checks_hold_when_defaults_are_overridden(harness: BotHarness) -> None:
    """The fake, like a guild that overrode the commands' default permissions, lets anyone invoke
    moderator commands: the refusal must come from our own check, and nothing may be written."""
    world = harness.world
    plain_role = world.guild.add_role("regulars", 0)
    regular = world.guild.add_member("regular", roles=[plain_role])
    with session_scope(harness.engine) as session:
        before = [session.scalar(select(func.count()).select_from(t)) for t in (Character, Job)]
    for command, options in [
        ("character add", {"name": "Sneaky", "subreddits": "sneaky"}),
        ("character remove", {"name": harness.labels[0]}),
        ("rescrape", {}),
        ("retrain", {}),
        ("model rollback", {}),
        ("settings mod-role", {"role": plain_role}),
    ]:
        handle = await harness.fake.slash(world.guild.id, world.channel_id, regular, command, options)
        answer = await handle.wait_original()
        assert answer.ephemeral and "Manage Server" in answer.text(), command
    with session_scope(harness.engine) as session:
        after = [session.scalar(select(func.count()).select_from(t)) for t in (Character, Job)]
        assert (
            session.scalar(select(func.count()).select_from(Character).where(Character.active.is_(False)))
            == 0
        )
    assert after == before
    assert harness.bot is not None and harness.bot.guild_settings.get(world.guild.id).mod_role_id is None


async def test_vote_spam_yields_one_vote_per_member(harness: BotHarness) -> None:
    world = harness.world
    reply = await harness.reply_to(await harness.post(("s.jpg", jpeg(1, 31), "image/jpeg")))
    pid = int(next(c for c in reply.custom_ids() if c.startswith("namae:right:")).rsplit(":", 1)[1])
    members = [world.guild.add_member(f"voter{i}") for i in range(12)]
    clicks = [harness.fake.click(reply.id, f"namae:right:{pid}", world.member_id) for _ in range(10)]
    clicks += [harness.fake.click(reply.id, f"namae:right:{pid}", m) for m in members]
    handles = await asyncio.gather(*clicks)
    responses = await asyncio.gather(*(h.response(timeout=10) for h in handles))
    assert all(not r.late for r in responses)
    with session_scope(harness.engine) as session:
        voters = list(session.scalars(select(Vote.member_id).where(Vote.prediction_id == pid)))
    assert sorted(voters) == sorted([world.member_id, *members])


@pytest.fixture
async def private_host_harness(
    discord_world, data_dir: Path, cascade_path: Path, sqlite_engine, model_source
):
    """i.redd.it resolves to a private address here (as a hostile DNS answer would)."""
    running = await make_harness(
        discord_world, data_dir, cascade_path, sqlite_engine, model_source, hosts={"i.redd.it": "10.255.0.7"}
    )
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def test_links_off_the_allow_list_or_to_private_addresses_are_never_fetched(
    private_host_harness: BotHarness,
) -> None:
    harness = private_host_harness
    fake = harness.fake
    served = fake.serve_file("secret.jpg", jpeg(2, 32), "image/jpeg")
    path = served.split(str(fake.port), 1)[1]
    links = " ".join(
        [
            served,  # 127.0.0.1: not an allowed host
            served.replace("127.0.0.1", "evil.example.com"),
            "http://169.254.169.254/latest/meta-data/",
            served.replace("127.0.0.1", "i.redd.it"),  # allowed name, private address
        ]
    )
    ignored = await harness.post(content=f"look {links}")
    # A later message with a real picture: once it is answered, the first has long been handled.
    answered = await harness.reply_to(await harness.post(("ok.jpg", jpeg(3, 33), "image/jpeg")))
    assert answered is not None
    assert not [m for m in fake.sent_messages if m.reply_to == ignored]
    assert not [r for r in fake.requests if path in r.path]


async def test_embeds_through_the_proxy_and_allowed_links_are_answered(harness: BotHarness) -> None:
    fake = harness.fake
    proxied = fake.serve_file("embed.jpg", jpeg(0, 34), "image/jpeg").replace(
        "127.0.0.1", "media.discordapp.net"
    )
    linked = fake.serve_file("link.jpg", jpeg(1, 35), "image/jpeg").replace("127.0.0.1", "i.imgur.com")
    original = "https://i.imgur.com/original.jpg"
    message = await harness.post(
        content=f"{original} and {linked}",
        embeds=[{"type": "image", "url": original, "thumbnail": {"url": original, "proxy_url": proxied}}],
    )
    reply = await harness.reply_to(message)
    text = reply.text()
    assert "**Image 1**" in text and "**Image 2**" in text and "Image 3" not in text


async def test_message_deleted_before_the_reply_keeps_nothing(harness: BotHarness) -> None:
    fake = harness.fake
    message = await harness.post(("gone.jpg", jpeg(2, 36), "image/jpeg"))
    fake.delete_message(harness.channel_id, message)
    assert harness.bot is not None
    reply_id = await harness.bot.answered.wait(message)
    assert reply_id is None
    with session_scope(harness.engine) as session:
        assert session.scalar(select(func.count()).select_from(Prediction)) == 0
        assert session.scalar(select(func.count()).select_from(Image)) == 0


async def test_attachment_that_is_not_an_image_or_too_large(harness: BotHarness) -> None:
    big = b"\x89PNG\r\n\x1a\n" + b"0" * (harness.settings.discord.max_image_bytes + 1)
    message = await harness.post(
        ("fake.png", b"this is not a png at all", "image/png"),
        ("big.png", big, "image/png"),
        ("ok.jpg", jpeg(0, 37), "image/jpeg"),
    )
    text = (await harness.reply_to(message)).text()
    assert "**Image 1**: the file is not an image" in text
    assert "**Image 2**: too large" in text
    assert "**Image 3**" in text and "%" in text

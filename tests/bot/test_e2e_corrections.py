"""Corrections end to end: Fix + select, quorum -> label, restarts, deleted and forged targets."""

from __future__ import annotations

from sqlalchemy import func, select

from catalog.db import session_scope
from catalog.retention import forget_member
from catalog.schema import Character, Label, LabelOrigin, Prediction, Vote
from tests.fixtures.bot import BotHarness, jpeg


def _pid(custom_ids: list[str], kind: str = "right") -> int:
    return int(next(c for c in custom_ids if c.startswith(f"namae:{kind}:")).rsplit(":", 1)[1])


def _character_id(harness: BotHarness, label_index: int) -> int:
    name = harness.labels[label_index].replace("_", " ").title()
    with session_scope(harness.engine) as session:
        return session.scalar(select(Character.id).where(Character.name == name))


async def _fix_and_pick(harness: BotHarness, reply_id: int, pid: int, member: int, value: str):
    click = await harness.fake.click(reply_id, f"namae:fix:{pid}", member)
    picker = await click.wait_original()
    assert picker.ephemeral and f"namae:pick:{pid}" in picker.custom_ids()
    assert f"namae:search:{pid}" in picker.custom_ids()
    choice = await harness.fake.choose(picker.id, f"namae:pick:{pid}", [value], member)
    response = await choice.response()
    assert response.accepted and not response.late
    return choice


async def test_fix_select_votes_reach_quorum_and_label(harness: BotHarness) -> None:
    world = harness.world
    bob = world.guild.add_member("bob")
    reply = await harness.reply_to(await harness.post(("x.jpg", jpeg(1, 7), "image/jpeg")))
    pid = _pid(reply.custom_ids())
    target = _character_id(harness, 3)

    await _fix_and_pick(harness, reply.id, pid, world.member_id, str(target))
    with session_scope(harness.engine) as session:
        vote = session.scalar(select(Vote).where(Vote.prediction_id == pid))
        assert vote.member_id == world.member_id and vote.character_id == target
        assert session.scalar(select(func.count()).select_from(Label)) == 0
    edited = await harness.fake.wait_for_edit(reply.id, lambda m: "1" in m.content)
    assert "votes" in edited.content

    await _fix_and_pick(harness, reply.id, pid, bob, str(target))
    with session_scope(harness.engine) as session:
        label = session.scalar(select(Label).where(Label.origin == LabelOrigin.vote))
        assert label is not None and label.character_id == target
        assert session.get(Prediction, pid).labelled
    await harness.fake.wait_for_edit(reply.id, lambda m: "labelled" in m.content)


async def test_not_a_character_and_changed_vote(harness: BotHarness) -> None:
    reply = await harness.reply_to(await harness.post(("y.jpg", jpeg(0, 8), "image/jpeg")))
    pid = _pid(reply.custom_ids())
    member = harness.world.member_id
    await _fix_and_pick(harness, reply.id, pid, member, "none")
    await _fix_and_pick(harness, reply.id, pid, member, str(_character_id(harness, 0)))
    with session_scope(harness.engine) as session:
        votes = list(session.scalars(select(Vote).where(Vote.prediction_id == pid)))
        assert len(votes) == 1 and not votes[0].not_character


async def test_buttons_survive_a_restart(harness: BotHarness) -> None:
    reply = await harness.reply_to(await harness.post(("z.jpg", jpeg(2, 9), "image/jpeg")))
    pid = _pid(reply.custom_ids())
    await harness.restart()
    click = await harness.fake.click(reply.id, f"namae:right:{pid}", harness.world.member_id)
    response = await click.response()
    assert response.accepted and response.type == 7  # UPDATE_MESSAGE: the vote line changed
    with session_scope(harness.engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote).where(Vote.prediction_id == pid)) == 1
    fix = await harness.fake.click(reply.id, f"namae:fix:{pid}", harness.world.moderator_id)
    assert (await fix.wait_original()).ephemeral


async def test_button_on_a_deleted_prediction_says_so(harness: BotHarness) -> None:
    reply = await harness.reply_to(await harness.post(("d.jpg", jpeg(3, 10), "image/jpeg")))
    pid = _pid(reply.custom_ids())
    assert harness.bot is not None
    await harness.bot.in_thread(forget_member, harness.engine, harness.world.member_id, harness.bot.store)
    click = await harness.fake.click(reply.id, f"namae:right:{pid}", harness.world.moderator_id)
    answer = await click.wait_original()
    assert answer.ephemeral and "no longer exists" in answer.text()
    with session_scope(harness.engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote)) == 0


async def test_forged_custom_id_cannot_touch_another_guilds_prediction(harness: BotHarness) -> None:
    reply = await harness.reply_to(await harness.post(("a.jpg", jpeg(0, 11), "image/jpeg")))
    victim = _pid(reply.custom_ids())
    # A second guild where the bot also answers; its member forges a button carrying the victim id.
    fake = harness.fake
    other = fake.add_guild("elsewhere")
    channel = other.add_channel("pics")
    mallory = other.add_member("mallory")
    assert harness.bot is not None
    await harness.bot.in_thread(harness.bot.guild_settings.enable_channel, other.id, channel)
    own = await fake.post_message(channel, mallory, "", attachments=[("b.jpg", jpeg(1, 12), "image/jpeg")])
    their_reply = await fake.wait_for_message(reply_to=own, timeout=30)
    own_pid = _pid(their_reply.custom_ids())
    message = fake.world.messages[their_reply.id]
    for row in message.components:
        for component in row["components"]:
            component["custom_id"] = component["custom_id"].replace(f":{own_pid}", f":{victim}")
    click = await fake.click(their_reply.id, f"namae:right:{victim}", mallory)
    answer = await click.wait_original()
    assert answer.ephemeral and "another server" in answer.text()
    with session_scope(harness.engine) as session:
        assert session.scalar(select(func.count()).select_from(Vote).where(Vote.prediction_id == victim)) == 0


async def test_disagreement_goes_to_review_and_a_moderator_approves(harness: BotHarness) -> None:
    world = harness.world
    reply = await harness.reply_to(await harness.post(("r.jpg", jpeg(0, 14), "image/jpeg")))
    pid = _pid(reply.custom_ids())
    source, voted = _character_id(harness, 0), _character_id(harness, 2)
    with session_scope(harness.engine) as session:
        prediction = session.get(Prediction, pid)
        session.add(
            Label(image_id=prediction.image_id, character_id=source, origin=LabelOrigin.subreddit, weight=0.9)
        )
    bob = world.guild.add_member("bob")
    await _fix_and_pick(harness, reply.id, pid, world.member_id, str(voted))
    await _fix_and_pick(harness, reply.id, pid, bob, str(voted))
    with session_scope(harness.engine) as session:
        assert (
            session.scalar(select(func.count()).select_from(Label).where(Label.origin == LabelOrigin.vote))
            == 0
        )

    refused = await harness.fake.slash(world.guild.id, world.channel_id, bob, "corrections review")
    assert "Manage Server" in (await refused.wait_original()).text()
    handle = await harness.fake.slash(
        world.guild.id, world.channel_id, world.moderator_id, "corrections review"
    )
    queue = await handle.wait_original()
    assert "1 open" in queue.text() and "subreddit" in queue.text()
    approve = next(c for c in queue.custom_ids() if c.startswith("namae:review:approve:"))
    # A member who is not a moderator cannot use the moderator's buttons either.
    sneaky = await harness.fake.click(queue.id, approve, bob)
    assert "only moderators" in (await sneaky.wait_original()).text().lower()
    click = await harness.fake.click(queue.id, approve, world.moderator_id)
    assert (await click.response()).accepted
    await harness.fake.wait_for_edit(queue.id, lambda m: "Nothing to review" in m.text())
    with session_scope(harness.engine) as session:
        label = session.scalar(select(Label).where(Label.origin == LabelOrigin.moderator))
        assert label is not None and label.character_id == voted

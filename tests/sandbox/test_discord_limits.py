"""The fake refuses what Discord refuses: 400, code 50035, and the offending field's path in
`errors`, for messages, interaction responses, follow-ups, edits, embeds, components and the
command payloads of a bulk overwrite; and its client refuses input no Discord client would send."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from sandbox.discord import FakeDiscord
from tests.fixtures.discord import DiscordWorld


def _path(errors: dict[str, Any]) -> tuple[str, str]:
    """The first field path of a 50035 body ('embeds.0.description') and its error code."""
    parts = []
    while "_errors" not in errors:
        key = next(iter(errors))
        parts.append(key)
        errors = errors[key]
    return ".".join(parts), errors["_errors"][0]["code"]


async def _post(
    http: aiohttp.ClientSession, url: str, body: Any, method: str = "POST", **kw: Any
) -> tuple[int, Any]:
    async with http.request(method, url, json=body, **kw) as response:
        return response.status, await response.json() if response.content_type == "application/json" else None


def _refused(result: tuple[int, Any]) -> tuple[str, str]:
    status, body = result
    assert status == 400 and body["code"] == 50035 and body["message"] == "Invalid Form Body", body
    return _path(body["errors"])


BUTTON = {"type": 2, "style": 1, "label": "ok", "custom_id": "ok"}


@pytest.mark.parametrize(
    ("body", "path", "code"),
    [
        ({"content": "x" * 2001}, "content", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"title": "t" * 257}]}, "embeds.0.title", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"description": "d" * 4097}]}, "embeds.0.description", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v" * 1025}]}]}, "embeds.0.fields.0.value", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"fields": [{"name": "n" * 257, "value": "v"}]}]}, "embeds.0.fields.0.name", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"fields": [{"name": "n", "value": "v"}] * 26}]}, "embeds.0.fields", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"footer": {"text": "f" * 2049}}]}, "embeds.0.footer.text", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"author": {"name": "a" * 257}}]}, "embeds.0.author.name", "BASE_TYPE_MAX_LENGTH"),
        ({"embeds": [{"description": "d" * 4000}, {"description": "d" * 2001}]}, "embeds", "MAX_EMBED_SIZE_EXCEEDED"),
        ({"embeds": [{"title": "t"}] * 11}, "embeds", "BASE_TYPE_MAX_LENGTH"),
        ({"components": [{"type": 1, "components": [BUTTON]}] * 6}, "components", "BASE_TYPE_MAX_LENGTH"),
        (
            {"components": [{"type": 1, "components": [dict(BUTTON, custom_id=f"b{i}") for i in range(6)]}]},
            "components.0.components",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            {"components": [{"type": 1, "components": [dict(BUTTON, custom_id="c" * 101)]}]},
            "components.0.components.0.custom_id",
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {"components": [{"type": 1, "components": [dict(BUTTON, label="l" * 81)]}]},
            "components.0.components.0.label",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            {"components": [{"type": 1, "components": [
                {"type": 3, "custom_id": "s", "options": [{"label": f"o{i}", "value": f"{i}"} for i in range(26)]}
            ]}]},
            "components.0.components.0.options",
            "BASE_TYPE_BAD_LENGTH",
        ),
        (
            {"components": [{"type": 1, "components": [
                {"type": 3, "custom_id": "s", "options": [{"label": "l" * 101, "value": "1"}]}
            ]}]},
            "components.0.components.0.options.0.label",
            "BASE_TYPE_BAD_LENGTH",
        ),
    ],
)  # fmt: skip
async def test_messages_over_the_limits_are_refused_with_the_field_path(
    discord_world: DiscordWorld, body: dict[str, Any], path: str, code: str
) -> None:
    fake, world = discord_world.fake, discord_world
    auth = {"Authorization": f"Bot {fake.token}"}
    async with aiohttp.ClientSession() as http:
        url = f"{fake.api_base}/channels/{world.channel_id}/messages"
        assert _refused(await _post(http, url, body, headers=auth)) == (path, code)
        status, sent = await _post(http, url, {"content": "fits"}, headers=auth)
        assert status == 200
        edit = f"{url}/{sent['id']}"
        assert _refused(await _post(http, edit, body, "PATCH", headers=auth)) == (path, code)
    assert [m.text() for m in fake.sent_messages] == ["fits"]


async def test_interaction_responses_followups_and_edits_are_held_to_the_same_limits(
    discord_world: DiscordWorld,
) -> None:
    fake, world = discord_world.fake, discord_world
    fake.commands[None] = [{"id": "1", "name": "raw", "type": 1, "options": [], "description": "raw"}]
    handle = await fake.slash(world.guild.id, world.channel_id, world.member_id, "raw")
    callback = f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback?with_response=1"
    webhook = f"{fake.api_base}/webhooks/{fake.application_id}/{handle.token}"
    long = {"content": "x" * 2001}
    big_embed = {"embeds": [{"description": "d" * 4097}]}
    async with aiohttp.ClientSession() as http:
        assert _refused(await _post(http, callback, {"type": 4, "data": long})) == (
            "data.content",
            "BASE_TYPE_MAX_LENGTH",
        )
        assert (
            _refused(await _post(http, callback, {"type": 4, "data": big_embed}))[0]
            == "data.embeds.0.description"
        )
        assert (await _post(http, callback, {"type": 4, "data": {"content": "fits"}}))[0] == 200
        assert _refused(await _post(http, webhook, long))[0] == "content"
        assert _refused(await _post(http, f"{webhook}/messages/@original", big_embed, "PATCH"))[0] == (
            "embeds.0.description"
        )
        status, followup = await _post(http, webhook + "?wait=true", {"content": "a follow-up"})
        assert status == 200
        assert (
            _refused(await _post(http, f"{webhook}/messages/{followup['id']}", long, "PATCH"))[0] == "content"
        )
    assert [m.text() for m in fake.sent_messages] == ["fits", "a follow-up"]


def _command(**extra: Any) -> dict[str, Any]:
    return {"name": "cmd", "description": "a command", "type": 1, "options": []} | extra


def _string(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"the {name}", "type": 3} | extra


@pytest.mark.parametrize(
    ("commands", "path", "code"),
    [
        ([_command(description="d" * 101)], "0.description", "BASE_TYPE_BAD_LENGTH"),
        ([_command(description="")], "0.description", "BASE_TYPE_BAD_LENGTH"),
        ([_command(), _command(name="Bad Name")], "1.name", "APPLICATION_COMMAND_INVALID_NAME"),
        ([_command(options=[_string("name", description="")])], "0.options.0.description", "BASE_TYPE_BAD_LENGTH"),
        ([_command(options=[_string(f"o{i}") for i in range(26)])], "0.options", "BASE_TYPE_MAX_LENGTH"),
        (
            [_command(options=[_string("mode", choices=[{"name": f"c{i}", "value": f"{i}"} for i in range(26)])])],
            "0.options.0.choices",
            "BASE_TYPE_MAX_LENGTH",
        ),
        (
            [_command(options=[_string("mode", choices=[{"name": "n" * 101, "value": "v"}])])],
            "0.options.0.choices.0.name",
            "BASE_TYPE_BAD_LENGTH",
        ),
        ([_command(options=[_string("text", max_length=6001)])], "0.options.0.max_length", "NUMBER_TYPE_MAX"),
        ([_command(contexts=[0, 5])], "0.contexts.1", "BASE_TYPE_CHOICES"),
        ([_command(integration_types=[2])], "0.integration_types.0", "BASE_TYPE_CHOICES"),
        (
            [_command(options=[{"name": f"s{i}", "description": "d" * 100, "type": 1,
                                "options": [_string(f"o{j}", description="d" * 100) for j in range(25)]}
                               for i in range(4)])],
            "0",
            "APPLICATION_COMMAND_TOO_LARGE",
        ),
        ([_command(name=f"m{i}", type=3, description="") for i in range(6)], "", "APPLICATION_COMMAND_TOO_MANY"),
    ],
)  # fmt: skip
async def test_bulk_overwrite_refuses_what_discord_refuses(
    fake_discord: FakeDiscord, commands: list[dict[str, Any]], path: str, code: str
) -> None:
    url = f"{fake_discord.api_base}/applications/{fake_discord.application_id}/commands"
    auth = {"Authorization": f"Bot {fake_discord.token}"}
    async with aiohttp.ClientSession() as http:
        assert _refused(await _post(http, url, commands, "PUT", headers=auth)) == (path, code)
    assert fake_discord.registered_commands == []


async def test_the_client_enforces_option_lengths_and_contexts(discord_world: DiscordWorld) -> None:
    fake, world = discord_world.fake, discord_world
    fake.commands[None] = [
        _command(name="guildy", id="1", contexts=[0], options=[_string("text", max_length=10, min_length=2)]),
        _command(name="anywhere", id="2", contexts=[0, 1]),
        _command(name="legacy", id="3", dm_permission=False),
    ]
    with pytest.raises(ValueError, match="client allows 2..10"):
        await fake.slash(world.guild.id, world.channel_id, world.member_id, "guildy", {"text": "x" * 11})
    with pytest.raises(ValueError, match="client allows 2..10"):
        await fake.slash(world.guild.id, world.channel_id, world.member_id, "guildy", {"text": "x"})
    await fake.slash(world.guild.id, world.channel_id, world.member_id, "guildy", {"text": "x" * 10})
    for name in ("guildy", "legacy"):
        with pytest.raises(ValueError, match="not offered in a DM"):
            await fake.slash_dm(world.member_id, name)
    handle = await fake.slash_dm(world.member_id, "anywhere")
    assert handle.payload["context"] == 1 and "guild_id" not in handle.payload
    assert handle.payload["user"]["id"] == str(world.member_id)
    assert handle.payload["authorizing_integration_owners"] == {"0": "0"}

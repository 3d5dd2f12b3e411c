"""The fake Discord shards as Discord does: GET /gateway/bot, IDENTIFY's `shard` (4010, 4011),
events routed by `(guild_id >> 22) % count` (DMs to shard 0), IDENTIFY pacing per concurrency
bucket (op 9 when too soon) and the day's session starts; with raw sockets for the protocol and
unmodified discord.py for what a client sees."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
import pytest
from discord.ext import commands

from bot.endpoints import point_discord_py_at
from sandbox.discord import FakeDiscord, FakeGuild
from sandbox.discord.running import connected
from sandbox.discord.sharding import ShardingRules, shard_of

INTENTS = (1 << 0) | (1 << 9) | (1 << 12) | (1 << 15)  # guilds, guild and direct messages, content


@asynccontextmanager
async def running(rules: ShardingRules, guilds: int = 0) -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord(sharding=rules) as fake:
        for i in range(guilds):
            fake.add_guild(f"guild {i}").add_channel("general")
        target = point_discord_py_at(fake.api_base, fake.gateway_url)
        try:
            yield fake
        finally:
            target.restore()


class RawShard:
    """A gateway client by hand: what it sends is exactly what the test says."""

    def __init__(self, fake: FakeDiscord, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.fake = fake
        self.ws = ws
        self.closed_with: int | None = None

    async def identify(self, shard: Any = None, *, token: str | None = None) -> dict[str, Any]:
        data: dict[str, Any] = {
            "token": token or self.fake.token,
            "intents": INTENTS,
            "properties": {"os": "linux", "browser": "test", "device": "test"},
        }
        if shard is not None:
            data["shard"] = shard
        await self.ws.send_str(json.dumps({"op": 2, "d": data}))
        return await self.frame()

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame; a close becomes {"close": code}."""
        message = await self.ws.receive(timeout=timeout)
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
            return {"close": self.ws.close_code}
        return json.loads(message.data)

    async def events(self, name: str, timeout: float = 0.5) -> list[dict[str, Any]]:
        """Dispatches named `name` until the socket is quiet for `timeout` seconds (or closed)."""
        found = []
        while True:
            try:
                frame = await self.frame(timeout)
            except TimeoutError:
                return found
            if "close" in frame:
                self.closed_with = frame["close"]
                return found
            if frame.get("t") == name:
                found.append(frame["d"])


@asynccontextmanager
async def raw_shard(fake: FakeDiscord) -> AsyncIterator[RawShard]:
    async with aiohttp.ClientSession() as http, http.ws_connect(fake.gateway_url) as ws:
        client = RawShard(fake, ws)
        hello = await client.frame()
        assert hello["op"] == 10
        yield client


async def ready(client: RawShard, shard: Any) -> dict[str, Any]:
    frame = await client.identify(shard)
    assert frame.get("t") == "READY", frame
    return frame["d"]


def guilds_by_shard(fake: FakeDiscord, count: int) -> dict[int, list[FakeGuild]]:
    found: dict[int, list[FakeGuild]] = {i: [] for i in range(count)}
    for guild in fake.world.guilds.values():
        found[shard_of(guild.id, count)].append(guild)
    return found


async def test_gateway_bot_recommends_shards_and_reports_session_starts() -> None:
    rules = ShardingRules(guilds_per_recommended_shard=2, max_concurrency=2, session_start_total=10)
    async with running(rules, guilds=5) as fake, aiohttp.ClientSession() as http:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with http.get(f"{fake.api_base}/gateway/bot", headers=headers) as response:
            before = await response.json()
        assert before["url"] == fake.gateway_url.rstrip("/")
        assert before["shards"] == 3  # 5 guilds at 2 a shard
        limit = before["session_start_limit"]
        assert limit["total"] == 10 and limit["remaining"] == 10 and limit["max_concurrency"] == 2
        assert 0 < limit["reset_after"] <= 86_400_000
        async with raw_shard(fake) as client:
            await ready(client, [0, 3])
        async with http.get(f"{fake.api_base}/gateway/bot", headers=headers) as response:
            assert (await response.json())["session_start_limit"]["remaining"] == 9
        async with http.get(f"{fake.api_base}/gateway/bot") as response:
            assert response.status == 401  # it needs the bot token, unlike GET /gateway


async def test_guild_events_reach_only_their_shard_and_dms_reach_shard_zero() -> None:
    async with running(ShardingRules(identify_interval_s=0), guilds=4) as fake:
        by_shard = guilds_by_shard(fake, 2)
        assert all(len(guilds) == 2 for guilds in by_shard.values()), "guild ids spread over shards"
        async with raw_shard(fake) as zero, raw_shard(fake) as one:
            ready_zero, ready_one = await ready(zero, [0, 2]), await ready(one, [1, 2])
            for data, shard in ((ready_zero, 0), (ready_one, 1)):
                assert data["shard"] == [shard, 2]
                assert {int(g["id"]) for g in data["guilds"]} == {g.id for g in by_shard[shard]}
            created = {0: await zero.events("GUILD_CREATE"), 1: await one.events("GUILD_CREATE")}
            for shard, payloads in created.items():
                assert {int(g["id"]) for g in payloads} == {g.id for g in by_shard[shard]}

            member = {}
            for shard, guilds in by_shard.items():
                guild = guilds[0]
                member[shard] = guild.add_member(f"member-{shard}")
                channel = next(iter(guild.channels))
                await fake.post_message(channel, member[shard], f"hello shard {shard}")
            await fake.post_dm(member[1], "a DM has no guild")
            messages = {0: await zero.events("MESSAGE_CREATE"), 1: await one.events("MESSAGE_CREATE")}
            assert [m["content"] for m in messages[0]] == ["hello shard 0", "a DM has no guild"]
            assert [m["content"] for m in messages[1]] == ["hello shard 1"]
            assert all(int(m["guild_id"]) in {g.id for g in by_shard[1]} for m in messages[1])

            # A guild the bot joins later goes to its own shard only.
            joined = fake.add_guild("late")
            late = {0: await zero.events("GUILD_CREATE"), 1: await one.events("GUILD_CREATE")}
            assert [int(g["id"]) for g in late[shard_of(joined.id, 2)]] == [joined.id]
            assert late[1 - shard_of(joined.id, 2)] == []


async def test_interactions_reach_the_shard_of_their_guild() -> None:
    async with running(ShardingRules(identify_interval_s=0), guilds=2) as fake:
        by_shard = guilds_by_shard(fake, 2)
        async with raw_shard(fake) as zero, raw_shard(fake) as one:
            await ready(zero, [0, 2])
            await ready(one, [1, 2])
            await zero.events("GUILD_CREATE")
            await one.events("GUILD_CREATE")
            guild = by_shard[1][0]
            fake.commands[None] = [
                {"id": "1", "name": "ping", "type": 1, "description": "ping", "options": []}
            ]
            await fake.slash(guild.id, next(iter(guild.channels)), guild.owner_id, "ping")
            assert [i["guild_id"] for i in await one.events("INTERACTION_CREATE")] == [str(guild.id)]
            assert await zero.events("INTERACTION_CREATE") == []


@pytest.mark.parametrize("shard", [[2, 2], [-1, 2], [0, 0], [0], "0,2", [0.0, 2], [True, 2]])
async def test_invalid_shard_closes_with_4010(shard: Any) -> None:
    async with running(ShardingRules(identify_interval_s=0), guilds=1) as fake:
        async with raw_shard(fake) as client:
            assert await client.identify(shard) == {"close": 4010}
        assert [r.outcome for r in fake.identify_log] == ["invalid_shard"]


async def test_discord_py_sees_4010_and_4011_as_fatal_connection_closed() -> None:
    """discord.py does not reconnect after 4010/4011: `start()` raises ConnectionClosed with the
    code, which `namae bot` turns into a one-line error."""
    async with running(ShardingRules(max_guilds_per_shard=2, identify_interval_s=0), guilds=3) as fake:
        for kwargs, code in (({"shard_count": 2, "shard_ids": [2]}, 4010), ({"shard_count": 1}, 4011)):
            client = discord.AutoShardedClient(intents=discord.Intents.default(), **kwargs)
            with pytest.raises(discord.ConnectionClosed) as raised:
                async with connected(client, fake, timeout=10):
                    pass
            assert raised.value.code == code
        # Unsharded, a client is shard [0, 1]: three guilds on one shard are too many as well.
        plain = discord.Client(intents=discord.Intents.default())
        with pytest.raises(discord.ConnectionClosed) as raised:
            async with connected(plain, fake, timeout=10):
                pass
        assert raised.value.code == 4011
        assert [r.outcome for r in fake.identify_log] == ["invalid_shard", *["sharding_required"] * 2]

        # Two shards of at most two guilds each are enough.
        sharded = discord.AutoShardedClient(
            intents=discord.Intents.default(), shard_count=2, guild_ready_timeout=0.05
        )
        sharded.before_identify_hook = no_wait  # type: ignore[method-assign]
        async with connected(sharded, fake, timeout=10):
            assert len(sharded.guilds) == 3 and fake.live_shards() == [(0, 2), (1, 2)]


async def no_wait(shard_id: int | None, *, initial: bool = False) -> None:
    """In place of discord.py's 5 s sleep before every IDENTIFY but a process's first."""


async def test_identify_pacing_per_concurrency_bucket() -> None:
    rules = ShardingRules(identify_interval_s=0.4, max_concurrency=2)
    async with running(rules, guilds=1) as fake:
        async with raw_shard(fake) as a, raw_shard(fake) as b, raw_shard(fake) as c:
            await ready(a, [0, 4])  # bucket 0
            assert await c.identify([2, 4]) == {"op": 9, "d": False}  # bucket 0 again, too soon
            await ready(b, [1, 4])  # bucket 1 has its own pace
            # Waiting out the identify interval is the behaviour under test here.
            await asyncio.sleep(rules.identify_interval_s)
            await ready(c, [2, 4])
        outcomes = [(r.shard, r.outcome) for r in fake.identify_log]
        assert outcomes == [([0, 4], "ready"), ([2, 4], "paced"), ([1, 4], "ready"), ([2, 4], "ready")]
        ready_at = {tuple(r.shard): r.at for r in fake.identify_log if r.outcome == "ready"}
        assert ready_at[(2, 4)] - ready_at[(0, 4)] >= rules.identify_interval_s
        assert len(fake.paced_identifies()) == 1


async def test_discord_py_identifies_again_after_a_paced_op_9() -> None:
    """Two discord.py processes starting at once (each one's first IDENTIFY is not delayed by
    discord.py): the second is answered op 9, closes with 1000 and IDENTIFYs again after its
    `before_identify_hook`, which here waits the fake's interval as discord.py's waits Discord's 5 s."""
    rules = ShardingRules(identify_interval_s=0.3)
    async with running(rules, guilds=2) as fake:

        async def discord_py_default(shard_id: int | None, *, initial: bool = False) -> None:
            if not initial:
                await asyncio.sleep(rules.identify_interval_s)

        clients = []
        for shard in (0, 1):
            client = discord.AutoShardedClient(
                intents=discord.Intents.default(), shard_count=2, shard_ids=[shard], guild_ready_timeout=0.05
            )
            client.before_identify_hook = discord_py_default  # type: ignore[method-assign]
            clients.append(client)
        async with connected(clients[0], fake), connected(clients[1], fake):
            assert fake.live_shards() == [(0, 2), (1, 2)]
            assert sum(len(c.guilds) for c in clients) == 2
        outcomes = [r.outcome for r in fake.identify_log]
        assert outcomes == ["ready", "paced", "ready"]
        assert fake.identify_log[2].at - fake.identify_log[0].at >= rules.identify_interval_s


async def test_spent_session_starts_end_every_session_and_revoke_the_token() -> None:
    async with running(ShardingRules(identify_interval_s=0, session_start_total=2), guilds=1) as fake:
        async with raw_shard(fake) as a, raw_shard(fake) as b, raw_shard(fake) as c:
            await ready(a, None)
            await ready(b, None)
            assert await c.identify(None) == {"close": 4004}
            for client in (a, b):
                await client.events("GUILD_CREATE")
                assert client.closed_with == 4004
        client = discord.Client(intents=discord.Intents.default())
        with pytest.raises(discord.LoginFailure):
            await client.login(fake.token)
        await client.close()


async def test_autosharded_bot_with_nothing_set_takes_the_recommended_count() -> None:
    async with running(
        ShardingRules(guilds_per_recommended_shard=2, identify_interval_s=0), guilds=3
    ) as fake:
        bot = commands.AutoShardedBot(
            command_prefix="!", intents=discord.Intents.default(), guild_ready_timeout=0.05
        )
        bot.before_identify_hook = no_wait  # type: ignore[method-assign]
        async with connected(bot, fake):
            assert bot.shard_count == 2 and sorted(bot.shards) == [0, 1]
            assert sorted(i["shard"] for i in fake.identifies) == [[0, 2], [1, 2]]
            for guild in bot.guilds:
                assert guild.shard_id == shard_of(guild.id, 2)
            assert len(bot.guilds) == 3


async def test_closed_sessions_can_be_forgotten_and_attachments_dropped() -> None:
    """Harness controls for long runs: sessions nobody resumes stop receiving events, and a
    message's attachments stop being served once the test is done with them."""
    async with running(ShardingRules(identify_interval_s=0), guilds=1) as fake:
        guild = next(iter(fake.world.guilds.values()))
        async with raw_shard(fake) as client:
            await ready(client, None)
        await fake.wait_until(lambda: True if not fake.live_shards() else None, what="the socket to close")
        assert len(fake.shard_sessions(guild.id)) == 1
        assert fake.forget_closed_sessions() == 1 and fake.shard_sessions(guild.id) == []
        channel = next(iter(guild.channels))
        posted = await fake.post_message(
            channel, guild.owner_id, attachments=[("a.png", b"png", "image/png")]
        )
        url = fake.world.messages[posted].attachments[0]["url"]
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as response:
                assert response.status == 200
            assert fake.forget_attachments(posted) == 1
            async with http.get(url) as response:
                assert response.status == 404


async def test_global_rate_limit_is_the_bots_whatever_its_shards() -> None:
    """50 requests a second per bot, counted across every shard and process (the token is one);
    discord.py waits out a global 429 and retries."""
    async with FakeDiscord(global_rate_limit=3, sharding=ShardingRules(identify_interval_s=0)) as fake:
        headers = {"Authorization": f"Bot {fake.token}"}
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(4):
                async with http.get(f"{fake.api_base}/users/@me", headers=headers) as response:
                    statuses.append(response.status)
                    if response.status == 429:
                        assert response.headers["X-RateLimit-Global"] == "true"
                        assert (await response.json())["global"] is True
        assert statuses == [200, 200, 200, 429]
        target = point_discord_py_at(fake.api_base, fake.gateway_url)
        try:
            client = discord.Client(intents=discord.Intents.default())
            await client.login(fake.token)
            users = await asyncio.gather(*(client.fetch_user(fake.bot_user_id) for _ in range(4)))
            assert {u.id for u in users} == {fake.bot_user_id}
            await client.close()
        finally:
            target.restore()
        assert all(r.path.endswith(("/users/@me", f"/users/{fake.bot_user_id}")) for r in fake.rate_limited)
        assert len(fake.rate_limited) >= 2

"""Run a real discord.py client against a fake for the length of an `async with` block."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TypeVar

import discord

from sandbox.discord.server import FakeDiscord

ClientT = TypeVar("ClientT", bound=discord.Client)


@contextlib.asynccontextmanager
async def connected(client: ClientT, fake: FakeDiscord, *, timeout: float = 15.0) -> AsyncIterator[ClientT]:
    """Log `client` in with the fake's token, wait for on_ready, close it afterwards.

    Give the client `guild_ready_timeout=0.05` (a Client keyword) or on_ready waits 2 s for
    more GUILD_CREATEs, as it does against Discord.
    """
    task = asyncio.create_task(client.start(fake.token), name="discord-client")
    ready = asyncio.create_task(client.wait_until_ready())
    try:
        done, _ = await asyncio.wait({task, ready}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            if task in done:
                task.result()  # raises the client's error (bad token, disallowed intents...)
            raise TimeoutError(f"the discord.py client was not ready after {timeout}s")
        yield client
    finally:
        ready.cancel()
        await client.close()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(task, timeout=5)

"""`namae bot --sandbox`: the real bot against the fake Discord on 127.0.0.1, with a scripted
guild where a member posts synthetic characters and corrects an answer.

It lives in `namae/`, the one package that may drive `sandbox/` (here and in the demo): the bot
itself never imports the fakes.
"""

from __future__ import annotations

import asyncio
import logging

from catalog.settings import Settings

log = logging.getLogger(__name__)

SANDBOX_HOSTS = {"media.discordapp.net": "127.0.0.1", "cdn.discordapp.com": "127.0.0.1"}


def name_model_labels(bot) -> None:
    """Give the active model's labels catalog characters, so answers show names, not slugs."""
    from catalog.characters import NewCharacter, add_character, resolve_labels
    from models.errors import ModelLoadError, RegistryError

    try:
        labels = bot.registry.card(bot.registry.require_active()[0]).labels
    except (ModelLoadError, RegistryError):
        return  # no model yet: the bot will say so in its reply
    for label, known in resolve_labels(bot.engine, labels).items():
        if known is None:
            add_character(bot.engine, NewCharacter(name=label.replace("_", " ").title()))


async def run_sandbox(
    settings: Settings, *, linger_s: float = 0.0, characters: int = 4, seed: int = 7
) -> list[str]:
    """Run the scripted session and return its transcript (one line per event)."""
    import numpy as np

    from bot.endpoints import point_discord_py_at
    from bot.runner import build_bot
    from sandbox.characters import jpeg_bytes
    from sandbox.characters.render import render_character, render_scene
    from sandbox.characters.traits import make_characters
    from sandbox.discord import FakeDiscord
    from sandbox.discord.running import connected

    hosts = {**settings.download.hosts, **SANDBOX_HOSTS}
    settings = settings.model_copy(update={"download": settings.download.model_copy(update={"hosts": hosts})})
    transcript: list[str] = []
    fake = FakeDiscord()
    await fake.start()
    target = point_discord_py_at(fake.api_base, fake.gateway_url)
    try:
        guild = fake.add_guild("namae sandbox")
        channel = guild.add_channel("pictures")
        member = guild.add_member("alice")
        bot = build_bot(settings, fetch_exempt_networks=("127.0.0.0/8",), guild_ready_timeout=0.05)
        await bot.in_thread(bot.guild_settings.enable_channel, guild.id, channel)
        await bot.in_thread(name_model_labels, bot)
        async with connected(bot, fake):
            transcript.append(f"fake Discord on {fake.base_url}; bot ready as {bot.user}")
            rng = np.random.default_rng(seed)
            specs = make_characters(characters, seed)
            portrait, _ = render_character(specs[0], rng, 256)
            scene, _ = render_scene(specs[1:3], rng, size=(512, 256))
            posted = await fake.post_message(
                channel,
                member,
                "who are these?",
                attachments=[
                    ("portrait.jpg", jpeg_bytes(portrait), "image/jpeg"),
                    ("scene.jpg", jpeg_bytes(scene), "image/jpeg"),
                ],
            )
            transcript.append("alice posted 2 pictures")
            reply = await fake.wait_for_message(reply_to=posted, timeout=120)
            transcript.extend(reply.text().splitlines())
            if linger_s > 0:
                transcript.append(f"running for {linger_s:.0f} s more")
                await asyncio.sleep(linger_s)
    finally:
        target.restore()
        await fake.stop()
    return transcript

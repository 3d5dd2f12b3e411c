"""Reply latency of the bot through the fake Discord, with and without face detection.

    .venv/bin/python -m bench.bot_latency --registry data/models --cascade ../shared/data/lbpcascade_animeface.xml

Posts one synthetic picture at a time (so this measures latency, not throughput) and times each
from the member's post to the bot's reply as the fake recorded it. Both variants run in the same
process on the same pictures; prints JSON with medians, p95 and the ratio of the two.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _pictures(n: int, seed: int) -> list[bytes]:
    from sandbox.characters.render import render_character, render_scene
    from sandbox.characters.traits import make_characters

    rng = np.random.default_rng(seed)
    specs = make_characters(4, 7)
    out = []
    for i in range(n):
        if i % 3 == 2:
            image, _ = render_scene(specs[:2], rng, size=(512, 256))
        else:
            image, _ = render_character(specs[i % 4], rng, 256)
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=90)
        # A marker per picture: identical bytes would be answered from the cache.
        out.append(buffer.getvalue())
    return out


async def _measure(registry: Path, cascade: Path, pictures: list[bytes], *, faces: bool) -> list[float]:
    from bot.app import NamaeBot
    from bot.inference import make_detector
    from catalog.characters import NewCharacter, add_character
    from catalog.db import open_catalog
    from catalog.guilds import GuildSettingsStore
    from catalog.settings import Settings
    from models.card import read_card
    from models.registry import Registry
    from sandbox.discord import FakeDiscord, point_discord_py_at
    from sandbox.discord.running import connected

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        settings = Settings(
            data_dir=data_dir,
            faces={"cascade_path": cascade},
            download={"hosts": {"media.discordapp.net": "127.0.0.1"}},
            discord={"member_cooldown_rate": 100_000, "guild_cooldown_rate": 100_000, "cache_size": 0},
            _env_file=None,
        )
        shutil.copytree(registry, settings.registry_dir)
        reg = Registry.from_settings(settings)
        engine = open_catalog(settings.resolved_database_url)
        active = reg.active_dir()
        assert active is not None, f"no active model in {registry}"
        for label in read_card(active).labels:
            add_character(engine, NewCharacter(name=label.replace("_", " ").title()))
        fake = FakeDiscord()
        await fake.start()
        target = point_discord_py_at(fake.base_url)
        try:
            guild = fake.add_guild("bench")
            channel = guild.add_channel("pictures")
            member = guild.add_member("poster")
            GuildSettingsStore(engine).enable_channel(guild.id, channel)
            detector = make_detector(settings) if faces else None
            bot = NamaeBot(settings, engine, reg, detector=detector, guild_ready_timeout=0.05,
                           fetch_exempt_networks=("127.0.0.0/8",))  # fmt: skip
            latencies = []
            async with connected(bot, fake):
                for i, data in enumerate([pictures[0], *pictures]):
                    started = time.monotonic()
                    posted = await fake.post_message(
                        channel, member, "", attachments=[(f"{i}.jpg", data, "image/jpeg")]
                    )
                    reply = await fake.wait_for_message(reply_to=posted, timeout=60)
                    if i:  # the first one warms up the model and the connection pool
                        latencies.append(reply.created_at - started)
            return latencies
        finally:
            target.restore()
            await fake.stop()
            engine.dispose()


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "n": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[max(0, round(0.95 * len(ordered)) - 1)] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--registry", type=Path, required=True, help="a model registry with an active version"
    )
    parser.add_argument("--cascade", type=Path, required=True, help="lbpcascade_animeface.xml")
    parser.add_argument("-n", type=int, default=30, help="pictures per variant")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    pictures = _pictures(args.n, args.seed)
    without = asyncio.run(_measure(args.registry, args.cascade, pictures, faces=False))
    with_faces = asyncio.run(_measure(args.registry, args.cascade, pictures, faces=True))
    result = {
        "bench": "bot_reply_latency",
        "without_faces": _summary(without),
        "with_faces": _summary(with_faces),
    }
    result["ratio_p50_faces_vs_none"] = round(
        result["with_faces"]["p50_ms"] / max(result["without_faces"]["p50_ms"], 1e-9), 2
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

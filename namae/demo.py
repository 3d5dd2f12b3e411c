"""`namae demo`: the whole product, offline, with nothing but this repository.

It draws synthetic characters, starts the fake Reddit and the fake Discord on 127.0.0.1, adds the
characters through real slash commands as a moderator, lets the worker scrape and train (CPU),
promotes the model, posts held-back pictures as members and reads the bot's replies, has two
members correct one answer until it becomes a label, and writes a report folder.

Every part is the real one (asyncpraw, discord.py, the worker's child processes, onnxruntime);
only Reddit and Discord are stand-ins. The acts live in `namae.demo_acts` and
`namae.demo_openworld`, the report folder in `namae.demo_report`; this module sets the stage,
runs them in order and prints the summary table.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from catalog.db import open_catalog
from catalog.errors import CatalogError
from catalog.settings import Settings
from namae.demo_acts import DiscordActs, _jpeg
from namae.demo_openworld import OpenWorldAct
from namae.demo_report import DemoResult, ReportWriter, _open_world_line

MARKER = ".namae-demo"
DISCORD_HOSTS = ("cdn.discordapp.com", "media.discordapp.net")
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class DemoOptions:
    characters: int = 6
    images: int = 24  # plain image posts per character, beside the scripted variety of sources
    held_back: int = 5  # pictures per character the model never saw, posted by members
    epochs: int = 10
    image_size: int = 96
    backbone: str | None = None
    seed: int = 2026
    out: Path = Path("demo-report")
    cascade: Path | None = None
    newcomer_images: int = 12  # posts of the character added after training (its scrape)
    open_world_posts: int = 3  # pictures each of the newcomer and of a stranger, posted after it


def find_cascade(explicit: Path | None, settings: Settings) -> Path | None:
    """The face cascade without a download when one is at hand: an explicit path, the configured
    one, or the shared data folder beside this checkout. None: let the product download it."""
    for candidate in (
        explicit,
        settings.faces.cascade_path,
        REPO_ROOT.parent / "shared" / "data" / "lbpcascade_animeface.xml",
    ):
        if candidate is not None and Path(candidate).is_file():
            return Path(candidate)
    return None


def prepare_out(out: Path) -> Path:
    """A fresh report folder; an existing one is only replaced if an earlier demo made it."""
    if out.exists():
        if not (out / MARKER).exists():
            raise CatalogError(f"{out} exists and was not made by `namae demo`; choose another --out")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    (out / MARKER).write_text("made by namae demo\n")
    return out


class Demo(DiscordActs, OpenWorldAct, ReportWriter):
    def __init__(self, options: DemoOptions, console: Console) -> None:
        self.options = options
        self.console = console
        self.result = DemoResult()
        self.conversation: list[str] = []
        self.started = time.monotonic()

    def step(self, text: str) -> None:
        elapsed = time.monotonic() - self.started
        self.console.print(
            f"[dim]{elapsed:6.1f}s[/dim] [bold cyan]▸[/bold cyan] {escape(text)}", highlight=False
        )

    def say(self, who: str, text: str) -> None:
        self.conversation.append(f"**{who}**: {text}")

    async def run(self) -> DemoResult:
        from bot.endpoints import point_discord_py_at
        from sandbox.characters.traits import make_characters
        from sandbox.discord import FakeDiscord
        from sandbox.reddit import FakeReddit

        options = self.options
        out = prepare_out(options.out)
        self.result.report_dir = out
        specs = make_characters(options.characters, options.seed)
        self.step(f"drew {len(specs)} synthetic characters: {', '.join(s.name for s in specs)}")
        taken = {s.name for s in specs}
        extra = [s for s in make_characters(options.characters + 2, options.seed + 1) if s.name not in taken]
        self.newcomer_spec, self.stranger_spec = extra[0], extra[1]

        reddit = FakeReddit()
        await reddit.start()
        self._reddit_world = reddit.world
        discord = FakeDiscord(heartbeat_interval_ms=5000)
        await discord.start()
        target = point_discord_py_at(discord.api_base, discord.gateway_url)
        worker = None
        worker_thread = None
        try:
            expected = self.script_reddit(reddit, specs)
            settings = self.settings(out / "data", reddit, discord)
            engine = open_catalog(settings.resolved_database_url)
            self.step(f"fake Reddit on {reddit.base_url}, fake Discord on {discord.base_url}")

            from namae.worker import Worker

            worker = Worker(settings, engine=engine, name="demo-worker")
            worker_thread = threading.Thread(target=worker.serve, name="demo-worker", daemon=True)
            worker_thread.start()
            self.step("worker started (jobs run in child processes)")
            await self.discord_session(settings, engine, discord, specs, expected)
        finally:
            if worker is not None:
                worker.stop()
            if worker_thread is not None:
                await asyncio.to_thread(worker_thread.join, 120)
            target.restore()
            await discord.stop()
            await reddit.stop()
        self.result.seconds["total"] = time.monotonic() - self.started
        self.write_report(out)
        return self.result

    # --- the two fakes ----------------------------------------------------------------------------

    def script_reddit(self, reddit: Any, specs: list[Any]) -> Any:
        """The scripted variety (galleries, imgur, crossposts, comment links, duplicates, hostile
        files) plus plain image posts, so that each character has enough pictures to learn from."""
        from sandbox.characters.render import render_character
        from sandbox.reddit.scripted import build_world

        world = reddit.world
        world.clients["namae-demo"] = "namae-demo-secret"
        world.imgur_client_ids.add("namae-demo")
        expected = build_world(world, specs, seed=self.options.seed)
        rng = np.random.default_rng(self.options.seed + 1)
        for spec in specs:
            subreddit = expected.subreddits[spec.name]
            for number in range(self.options.images):
                image, _ = render_character(spec, rng, 256)
                url = world.add_file(
                    "i.redd.it", f"/{world.next_id()}demo{number}.jpg", _jpeg(image, 85 + number % 10)
                )
                world.add_post(
                    subreddit,
                    f"{spec.name} fanart #{number + 1}",
                    url=url,
                    post_hint="image",
                    domain="i.redd.it",
                )
        return expected

    def settings(self, data_dir: Path, reddit: Any, discord: Any) -> Settings:
        base = Settings(_env_file=None, data_dir=data_dir)
        cascade = find_cascade(self.options.cascade, base)
        hosts = {**reddit.hosts, **dict.fromkeys(DISCORD_HOSTS, "127.0.0.1")}
        train: dict[str, Any] = {
            "epochs": self.options.epochs,
            "image_size": self.options.image_size,
            "min_images_per_class": 5,
        }
        if self.options.backbone:
            train["backbone"] = self.options.backbone
        return Settings(
            _env_file=None,
            data_dir=data_dir,
            log_level="WARNING",
            faces={"cascade_path": cascade} if cascade else {},
            download={"hosts": hosts, "allow_private_addresses": True, "backoff_base": 0.05},
            reddit={
                "client_id": "namae-demo",
                "client_secret": "namae-demo-secret",
                **reddit.reddit_kwargs(),
                "rate_limit_backoff": 0.1,
                "imgur_client_id": "namae-demo",
                "imgur_api_url": f"http://api.imgur.com:{reddit.port}",
            },
            train=train,
            memory={"poll_s": 0.5},
            discord={
                "token": discord.token,
                "model_poll_s": 0.5,
                "quorum": 2,
                "member_cooldown_rate": 1000,
                "guild_cooldown_rate": 1000,
            },
            worker={
                "rescrape_schedule": "off",
                "retrain_schedule": "off",
                "retrain_check_schedule": "off",
                "poll_interval_s": 0.2,
                "heartbeat_s": 1.0,
            },
        )


def summary_table(result: DemoResult) -> Table:
    table = Table(title="namae demo", show_header=True)
    table.add_column("what")
    table.add_column("result")
    correct = sum(a.correct for a in result.answers)
    table.add_row(
        "scraped from the fake Reddit",
        f"{result.scrape.get('new', 0)} images ({result.scrape.get('duplicates', 0)} duplicates, {result.scrape.get('near_duplicates', 0)} near-duplicates, {sum(result.scrape.get('rejected', {}).values())} hostile files rejected)",
    )
    table.add_row(
        "model",
        f"{result.model_version} ({result.train_metrics.get('backbone', '?')}, {result.train_metrics.get('image_size', '?')} px)",
    )
    f1 = result.train_metrics.get("test_macro_f1")
    table.add_row("test macro-F1 (frozen test set)", f"{f1:.3f}" if isinstance(f1, float) else "n/a")
    table.add_row(
        "held-back pictures, bot correct", f"{correct}/{len(result.answers)} = {result.accuracy:.1%}"
    )
    table.add_row("not sure", str(sum(a.not_sure for a in result.answers)))
    scene = (
        ", ".join(f"{a.truth} → {'not sure' if a.not_sure else a.answer}" for a in result.scene_faces)
        or "no faces found"
    )
    table.add_row("two-character scene", escape(scene))
    table.add_row(
        "correction",
        "label landed in the catalog" if result.correction.get("label_in_catalog") else "no label",
    )
    table.add_row("character added after training (no retrain)", _open_world_line(result.newcomer))
    table.add_row("character never added", _open_world_line(result.stranger))
    table.add_row("time", ", ".join(f"{k} {v:.0f}s" for k, v in result.seconds.items()))
    table.add_row("report", escape(str(result.report_dir)))
    return table


def run_demo(options: DemoOptions, console: Console) -> DemoResult:
    return asyncio.run(Demo(options, console).run())

"""`namae demo`: the whole product, offline, with nothing but this repository.

It draws synthetic characters, starts the fake Reddit and the fake Discord on 127.0.0.1, adds the
characters through real slash commands as a moderator, lets the worker scrape and train (CPU),
promotes the model, posts held-back pictures as members and reads the bot's replies, has two
members correct one answer until it becomes a label, and writes a report folder.

Every part is the real one (asyncpraw, discord.py, the worker's child processes, onnxruntime);
only Reddit and Discord are stand-ins.
"""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy import select

from catalog.characters import slugify
from catalog.db import open_catalog, session_scope
from catalog.errors import CatalogError
from catalog.jobs import JobQueue
from catalog.schema import Job, JobStatus, Label, LabelOrigin, Prediction
from catalog.settings import Settings

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


@dataclass
class Answer:
    member: str
    picture: str
    truth: str
    answer: str
    confidence: float
    not_sure: bool
    prediction_id: int | None = None
    reply_id: int | None = None

    @property
    def correct(self) -> bool:
        return not self.not_sure and slugify(self.answer) == slugify(self.truth)


@dataclass
class DemoResult:
    answers: list[Answer] = field(default_factory=list)
    scene_faces: list[Answer] = field(default_factory=list)
    model_version: str | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)
    scrape: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] = field(default_factory=dict)
    newcomer: dict[str, Any] = field(default_factory=dict)  # added after training, named from examples
    stranger: dict[str, Any] = field(default_factory=dict)  # never added: "a character I don't know"
    seconds: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None

    @property
    def accuracy(self) -> float:
        return sum(a.correct for a in self.answers) / len(self.answers) if self.answers else 0.0


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


def _jpeg(image: Any, quality: int = 90) -> bytes:
    """Huffman-optimized, unlike sandbox.characters.jpeg_bytes: the demo's measured figures (and its
    leak-free split, which hashes file bytes) belong to these exact files."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


class Demo:
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

    # --- the Discord conversation ----------------------------------------------------------------

    async def discord_session(
        self, settings: Settings, engine: Any, discord: Any, specs: list[Any], expected: Any
    ) -> None:
        from bot.runner import build_bot
        from sandbox.discord.running import connected

        guild = discord.add_guild("Anime Fan Club")
        channel = guild.add_channel("who-is-this")
        moderator = guild.add_member("mod_mika", permissions=1 << 5)  # Manage Server
        members = {name: guild.add_member(name) for name in ("aoi", "ren", "sora")}
        bot = build_bot(settings, fetch_exempt_networks=("127.0.0.0/8",), guild_ready_timeout=0.05)
        async with connected(bot, discord):
            self.step(f"bot connected as {bot.user} to the fake Discord")
            await self.slash(
                discord,
                guild.id,
                channel,
                moderator,
                "settings channels",
                {"channel": channel, "enabled": True},
                "mod_mika",
            )

            started = time.monotonic()
            for spec in specs:
                options = {
                    "name": spec.name,
                    "series": spec.series,
                    "subreddits": expected.subreddits[spec.name],
                    "title_subreddits": expected.series_subreddit[spec.name],
                }
                aliases = expected.aliases.get(spec.name) if hasattr(expected, "aliases") else None
                if aliases:
                    options["aliases"] = ", ".join(aliases)
                await self.slash(discord, guild.id, channel, moderator, "character add", options, "mod_mika")
            self.step(f"moderator added {len(specs)} characters with /character add; scrape jobs are queued")
            scrape_jobs = await self.wait_for_jobs(engine, "scrape", len(specs))
            self.scrape_jobs = len(scrape_jobs)
            self.result.scrape = self._scrape_totals(scrape_jobs)
            self.result.seconds["scrape"] = time.monotonic() - started
            self.step(
                f"scraped: {self.result.scrape.get('new', 0)} new images, "
                f"{self.result.scrape.get('duplicates', 0)} duplicates, "
                f"{self.result.scrape.get('near_duplicates', 0)} near-duplicates, "
                f"{sum(self.result.scrape.get('rejected', {}).values())} rejected"
            )
            await self.slash(discord, guild.id, channel, moderator, "jobs", {}, "mod_mika")

            started = time.monotonic()
            await self.slash(discord, guild.id, channel, moderator, "retrain", {}, "mod_mika")
            [train_job] = await self.wait_for_jobs(engine, "train", 1)
            self.result.seconds["train"] = time.monotonic() - started
            outcome = train_job.result or {}
            self.result.train_metrics = outcome.get("metrics", {})
            self.result.model_version = outcome.get("version")
            promotion = outcome.get("promotion") or {}
            if not promotion.get("promoted"):
                raise CatalogError(
                    f"the trained model was not promoted: {promotion.get('reason', 'no version')}"
                )
            self.step(
                f"trained and promoted {self.result.model_version}: test macro-F1 "
                f"{self.result.train_metrics.get('test_macro_f1', float('nan')):.3f}"
            )
            await bot.inference.wait_for_version(self.result.model_version, timeout=60)
            self.step("the bot switched to the new model without a restart")
            await self.slash(discord, guild.id, channel, moderator, "model info", {}, "mod_mika")

            await self.post_held_back(bot, discord, channel, members, specs)
            await self.correct_one(engine, discord, members)
            await self.open_world(bot, engine, discord, guild.id, channel, moderator, members)

    async def slash(
        self, discord: Any, guild: int, channel: int, member: int, command: str, options: dict, who: str
    ) -> None:
        shown = " ".join(f"{k}:{v}" for k, v in options.items() if k != "channel")
        self.say(who, f"/{command} {shown}".strip())
        handle = await discord.slash(guild, channel, member, command, options)
        response = await handle.response(timeout=3)
        if not response.accepted or response.late:
            raise CatalogError(f"/{command} was not answered within Discord's 3 seconds")
        message = await handle.wait_original() if response.type == 5 else None
        text = _callback_text(response.data) if message is None else message.text()
        self.say("namae", text)

    async def wait_for_jobs(self, engine: Any, kind: str, count: int) -> list[Job]:
        """Follow the worker's jobs live, from the progress it writes back to the catalog."""
        queue = JobQueue(engine)
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console, transient=True) as progress:
            tasks: dict[int, Any] = {}
            while True:
                jobs = [j for j in await asyncio.to_thread(queue.recent, limit=200) if j.kind == kind]
                for job in jobs:
                    if job.id not in tasks:
                        tasks[job.id] = progress.add_task(f"{kind} #{job.id}", total=1.0)
                    label = f"{kind} #{job.id} {job.status}: {(job.message or '')[:60]}"
                    progress.update(tasks[job.id], completed=job.progress, description=label)
                done = [j for j in jobs if j.status in (JobStatus.succeeded, JobStatus.failed)]
                failed = [j for j in done if j.status == JobStatus.failed]
                if failed:
                    raise CatalogError(f"{kind} job #{failed[0].id} failed: {failed[0].error}")
                if len(done) >= count:
                    return sorted(done, key=lambda j: j.id)
                await asyncio.sleep(0.25)  # polling the catalog, which is what /jobs shows too

    @staticmethod
    def _scrape_totals(jobs: list[Job]) -> dict[str, Any]:
        totals: dict[str, Any] = {
            "new": 0,
            "duplicates": 0,
            "near_duplicates": 0,
            "faces": 0,
            "review": 0,
            "rejected": {},
        }
        for job in jobs:
            job_totals = (job.result or {}).get("totals", {})
            for key in ("new", "duplicates", "near_duplicates", "faces", "review"):
                totals[key] += job_totals.get(key, 0)
            for reason, count in job_totals.get("rejected", {}).items():
                totals["rejected"][reason] = totals["rejected"].get(reason, 0) + count
        return totals

    async def post_held_back(
        self,
        bot: Any,
        discord: Any,
        channel: int,
        members: dict[str, int],
        specs: list[Any],
    ) -> None:
        from sandbox.characters.render import render_character, render_scene

        rng = np.random.default_rng(self.options.seed + 99)  # pictures the scraper never saw
        posters = list(members.items())
        posts: list[tuple[int, str, list[tuple[str, str]]]] = []
        for round_ in range(self.options.held_back):
            for index, spec in enumerate(specs):
                who, member = posters[(round_ + index) % len(posters)]
                image, _ = render_character(spec, rng, 256)
                picture = f"{spec.slug}-{round_ + 1}.jpg"
                message = await discord.post_message(
                    channel, member, "who is this?", attachments=[(picture, _jpeg(image), "image/jpeg")]
                )
                posts.append((message, who, [(picture, spec.name)]))
        scene_specs = specs[:2]
        scene, faces = render_scene(scene_specs, rng)
        by_slug = {s.slug: s.name for s in specs}
        truths = [by_slug.get(slug, slug) for slug, _box in faces]
        who, member = posters[0]
        scene_message = await discord.post_message(
            channel, member, "and these two?", attachments=[("scene.jpg", _jpeg(scene), "image/jpeg")]
        )
        self.step(f"members posted {len(posts)} held-back pictures and a two-character scene")

        total = len(posts) + 1
        with Progress(
            TextColumn("waiting for the bot's replies"),
            BarColumn(),
            TextColumn("{task.completed}/{task.total}"),
            console=self.console,
            transient=True,
        ) as progress:
            task = progress.add_task("replies", total=total)
            for message, who, pictures in posts:
                reply = await discord.wait_for_message(reply_to=message, timeout=120)
                self.say(who, f"who is this? [{pictures[0][0]}]")
                self.say("namae", reply.text())
                self.result.answers.extend(self.answers_for(bot.engine, message, reply.id, who, pictures))
                progress.advance(task)
            scene_reply = await discord.wait_for_message(reply_to=scene_message, timeout=120)
            self.say(who, "and these two? [scene.jpg]")
            self.say("namae", scene_reply.text())
            self.result.scene_faces = self.scene_answers(bot.engine, scene_message, who, truths)
            progress.advance(task)
        correct = sum(a.correct for a in self.result.answers)
        self.step(
            f"the bot answered every picture: {correct}/{len(self.result.answers)} correct ({self.result.accuracy:.0%})"
        )

    @staticmethod
    def _predictions(engine: Any, message: int) -> list[Prediction]:
        with session_scope(engine) as session:
            return list(
                session.scalars(
                    select(Prediction).where(Prediction.message_id == message).order_by(Prediction.id)
                )
            )

    def answers_for(
        self, engine: Any, message: int, reply: int, who: str, pictures: list[tuple[str, str]]
    ) -> list[Answer]:
        predictions = self._predictions(engine, message)
        answers = []
        for (picture, truth), prediction in zip(pictures, predictions, strict=False):
            answers.append(_answer(prediction, who, picture, truth, reply))
        for picture, truth in pictures[len(predictions) :]:
            answers.append(Answer(who, picture, truth, "(no answer)", 0.0, True))
        return answers

    def scene_answers(self, engine: Any, message: int, who: str, truths: list[str]) -> list[Answer]:
        predictions = [p for p in self._predictions(engine, message) if p.box is not None]
        predictions.sort(key=lambda p: p.box["x"])
        return [
            _answer(p, who, f"scene face {n + 1}", truth)
            for n, (p, truth) in enumerate(zip(predictions, truths, strict=False))
        ]

    async def correct_one(self, engine: Any, discord: Any, members: dict[str, int]) -> None:
        """Two members fix one answer: the first vote is counted, the second reaches quorum and
        becomes a label in the catalog. A wrong answer is chosen when there is one."""
        from catalog.characters import find_character

        answers = [a for a in self.result.answers if a.prediction_id is not None]
        if not answers:
            raise CatalogError("the bot gave no answer to correct")
        target = next((a for a in answers if not a.correct), answers[0])
        with session_scope(engine) as session:
            character_id = find_character(session, target.truth).id
        fixers = list(members.items())[:2]
        for who, member in fixers:
            click = await discord.click(target.reply_id, f"namae:fix:{target.prediction_id}", member)
            picker = await click.wait_original()
            choice = await discord.choose(
                picker.id, f"namae:pick:{target.prediction_id}", [str(character_id)], member
            )
            await choice.response(timeout=3)
            self.say(who, f"Fix → {target.truth} (on {target.picture})")
        await discord.wait_for_edit(target.reply_id, lambda m: "labelled" in m.content, timeout=30)
        with session_scope(engine) as session:
            label = session.scalar(
                select(Label).where(Label.origin == LabelOrigin.vote, Label.character_id == character_id)
            )
            landed = label is not None and session.get(Prediction, target.prediction_id).labelled
        self.result.correction = {
            "picture": target.picture,
            "bot_said": "not sure" if target.not_sure else target.answer,
            "truth": target.truth,
            "votes": len(fixers),
            "label_in_catalog": landed,
        }
        self.step(
            f"{fixers[0][0]} and {fixers[1][0]} corrected {target.picture} to {target.truth}: "
            + ("quorum reached, a label landed in the catalog" if landed else "no label (quorum not reached)")
        )

    async def open_world(
        self,
        bot: Any,
        engine: Any,
        discord: Any,
        guild: int,
        channel: int,
        moderator: int,
        members: dict[str, int],
    ) -> None:
        """A character added after training is named from its scraped faces (no retrain), and one
        the community never added is answered "a character I don't know"."""
        from sandbox.characters.render import render_character

        spec, stranger = self.newcomer_spec, self.stranger_spec
        world = self._reddit_world
        rng = np.random.default_rng(self.options.seed + 7)
        subreddit = f"{spec.slug.replace('_', '')[:18]}Fans"
        for number in range(self.options.newcomer_images):
            image, _ = render_character(spec, rng, 256)
            url = world.add_file("i.redd.it", f"/{world.next_id()}new{number}.jpg", _jpeg(image))
            world.add_post(subreddit, f"{spec.name} fanart #{number + 1}", url=url, post_hint="image",
                           domain="i.redd.it")  # fmt: skip
        started = time.monotonic()
        options = {"name": spec.name, "series": spec.series, "subreddits": subreddit}
        await self.slash(discord, guild, channel, moderator, "character add", options, "mod_mika")
        jobs = await self.wait_for_jobs(engine, "scrape", self.scrape_jobs + 1)
        memory = (jobs[-1].result or {}).get("memory") or {}
        scraped = time.monotonic()
        needed = bot.settings.memory.min_examples
        known = await self._wait_until_known(bot, spec.name, needed, timeout=60)
        self.result.seconds["newcomer_known"] = time.monotonic() - scraped
        self.step(
            f"moderator added {spec.name} after training; its scrape put {memory.get('added', 0)} faces in the "
            f"memory and the bot could name it {time.monotonic() - scraped:.1f}s later, without a retrain"
        )
        await self.slash(
            discord, guild, channel, moderator, "character info", {"name": spec.name}, "mod_mika"
        )
        posters = list(members.items())
        newcomer = await self._post_pictures(engine, discord, channel, posters, spec, rng, "new")
        strangers = await self._post_pictures(engine, discord, channel, posters, stranger, rng, "stranger")
        self.result.newcomer = {"name": spec.name, "faces_in_memory": known, "answers": newcomer,
                                "seconds_after_scrape": round(self.result.seconds["newcomer_known"], 1),
                                "seconds_add_to_named": round(time.monotonic() - started, 1)}  # fmt: skip
        self.result.stranger = {"name": stranger.name, "answers": strangers}
        named = sum(a["kind"] == "name" and a["answer"] == spec.name for a in newcomer)
        unknown = sum(a["kind"] == "stranger" for a in strangers)
        self.step(
            f"{spec.name} (from {known} examples) named in {named}/{len(newcomer)} new pictures; "
            f"{stranger.name}, never added, answered 'a character I don't know' in {unknown}/{len(strangers)}"
        )

    async def _wait_until_known(self, bot: Any, name: str, needed: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            world = bot.inference.world
            faces = (world.characters().get(name) or 0) if world is not None else 0
            if faces >= needed:
                return faces
            if time.monotonic() > deadline:
                raise CatalogError(f"the bot did not learn {name} within {timeout:.0f}s of its scrape")
            await asyncio.sleep(0.25)  # the bot polls the catalog's memory rows on its own

    async def _post_pictures(
        self,
        engine: Any,
        discord: Any,
        channel: int,
        posters: list[tuple[str, int]],
        spec: Any,
        rng: Any,
        tag: str,
    ) -> list[dict[str, Any]]:
        from sandbox.characters.render import render_character

        out = []
        for number in range(self.options.open_world_posts):
            who, member = posters[number % len(posters)]
            image, _ = render_character(spec, rng, 256)
            picture = f"{tag}-{number + 1}.jpg"
            message = await discord.post_message(
                channel, member, "who is this?", attachments=[(picture, _jpeg(image), "image/jpeg")]
            )
            reply = await discord.wait_for_message(reply_to=message, timeout=120)
            self.say(who, f"who is this? [{picture}]")
            self.say("namae", reply.text())
            for prediction in self._predictions(engine, message):
                best = (prediction.topk.get("candidates") or [{"label": "", "probability": 0.0}])[0]
                out.append({"picture": picture, "truth": spec.name, "kind": prediction.topk.get("kind"),
                            "answer": best["label"], "confidence": best["probability"]})  # fmt: skip
        return out

    # --- the report ----------------------------------------------------------------------------

    def write_report(self, out: Path) -> None:
        result = self.result
        runs = sorted((out / "data" / "runs").glob("*/report.md")) if (out / "data" / "runs").exists() else []
        if runs:
            shutil.copytree(
                runs[-1].parent, out / "training", ignore=shutil.ignore_patterns("*.pt", "*.ckpt")
            )
        (out / "conversation.md").write_text(
            "# The demo's Discord conversation\n\n" + "\n\n".join(self.conversation) + "\n"
        )
        summary = {
            "model_version": result.model_version,
            "held_back_pictures": len(result.answers),
            "correct": sum(a.correct for a in result.answers),
            "not_sure": sum(a.not_sure for a in result.answers),
            "accuracy": round(result.accuracy, 4),
            "scene_faces": [asdict(a) | {"correct": a.correct} for a in result.scene_faces],
            "train_metrics": result.train_metrics,
            "scrape": result.scrape,
            "correction": result.correction,
            "newcomer": result.newcomer,
            "stranger": result.stranger,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "answers": [asdict(a) | {"correct": a.correct} for a in result.answers],
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        lines = [
            "# namae demo summary",
            "",
            f"- model: `{result.model_version}`; test macro-F1 {result.train_metrics.get('test_macro_f1', 'n/a')}",
            f"- held-back pictures answered correctly: {summary['correct']}/{summary['held_back_pictures']} ({result.accuracy:.1%}); not sure: {summary['not_sure']}",
            f"- correction: {result.correction}",
            f"- added after training: {_open_world_line(result.newcomer)}",
            f"- never added: {_open_world_line(result.stranger)}",
            f"- time: {summary['seconds']}",
            "",
            "| picture | posted by | truth | bot's answer | confidence | correct |",
            "|---|---|---|---|---|---|",
        ]
        for a in [*result.answers, *result.scene_faces]:
            answer = "not sure" if a.not_sure else a.answer
            lines.append(
                f"| {a.picture} | {a.member} | {a.truth} | {answer} | {a.confidence:.0%} | {'yes' if a.correct else 'no'} |"
            )
        (out / "summary.md").write_text("\n".join(lines) + "\n")


KIND_WORDS = {"name": "named", "pair": "one of two", "stranger": "a character I don't know",
              "not_character": "not a character"}  # fmt: skip


def _open_world_line(part: dict[str, Any]) -> str:
    if not part:
        return "not run"
    answers = ", ".join(
        f"{KIND_WORDS.get(a['kind'], a['kind'])}{' ' + a['answer'] if a['kind'] == 'name' else ''}"
        for a in part.get("answers", [])
    )
    known = f" (from {part['faces_in_memory']} examples)" if "faces_in_memory" in part else ""
    return f"{part['name']}{known}: {answers}"


def _callback_text(data: dict[str, Any] | None) -> str:
    if not data:
        return "(deferred)"
    parts = [data.get("content") or ""]
    for embed in data.get("embeds") or []:
        parts += [embed.get("title") or "", embed.get("description") or ""]
        parts += [f"{f.get('name')}: {f.get('value')}" for f in embed.get("fields") or []]
    return "\n".join(p for p in parts if p).strip() or "(no text)"


def _answer(prediction: Prediction, who: str, picture: str, truth: str, reply: int | None = None) -> Answer:
    candidates = prediction.topk.get("candidates") or []
    best = candidates[0] if candidates else {"label": "(none)", "probability": 0.0}
    unknown = bool(prediction.topk.get("unknown"))
    return Answer(
        who, picture, truth, best["label"], float(best["probability"]), unknown, prediction.id, reply
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

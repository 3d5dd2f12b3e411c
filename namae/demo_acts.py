"""The Discord acts of `namae demo`: a moderator sets the bot up and adds the characters with
slash commands, the worker's scrape and training jobs are followed live, members post held-back
pictures and a two-character scene, and two members correct one answer until it becomes a label.

`DiscordActs` is mixed into `namae.demo.Demo`, which holds the options, the result, the console and
the narration (`step`, `say`); the open-world act (`namae.demo_openworld`) follows these.
"""

from __future__ import annotations

import asyncio
import io
import time
from typing import Any

import numpy as np
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from sqlalchemy import select

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.jobs import JobQueue
from catalog.schema import Job, JobStatus, Label, LabelOrigin, Prediction
from catalog.settings import Settings
from namae.demo_report import Answer


def _jpeg(image: Any, quality: int = 90) -> bytes:
    """Huffman-optimized, unlike sandbox.characters.jpeg_bytes: the demo's measured figures (and its
    leak-free split, which hashes file bytes) belong to these exact files."""
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality, optimize=True)
    return buffer.getvalue()


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


class DiscordActs:
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
        try:
            await discord.wait_for_edit(target.reply_id, lambda m: "labelled" in m.content, timeout=60)
        except TimeoutError as exc:
            with session_scope(engine) as session:
                row = session.get(Prediction, target.prediction_id)
                state = f"reply {row.reply_message_id}, labelled {row.labelled}" if row else "gone"
            raise TimeoutError(f"{exc}; prediction {target.prediction_id} in the catalog: {state}") from None
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

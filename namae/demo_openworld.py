"""The open-world act of `namae demo`, after training: a character added later is named from its
scraped faces without a retrain, and one the community never added is answered "a character I don't
know".

`OpenWorldAct` is mixed into `namae.demo.Demo`; it uses the Discord acts' `slash`,
`wait_for_jobs` and `_predictions` (`namae.demo_acts`).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from catalog.errors import CatalogError
from namae.demo_acts import _jpeg


class OpenWorldAct:
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

"""Classification: every image of a message in an enabled channel, `/classify`, and the message
context menu "Identify character".

A message's images are attachments, image embeds (fetched through Discord's media proxy, the
`proxy_url`) and direct links to allowed hosts. Links elsewhere are ignored and never fetched;
the SSRF-safe fetcher also refuses allowed names that resolve to private addresses.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import discord
from discord import app_commands
from discord.ext import commands

from bot.inference import NoModel
from bot.render import NO_MENTIONS, AnswerView, ImageView, reply_embed
from bot.views import MAX_ANSWER_BUTTONS, answer_buttons
from catalog.characters import resolve_labels
from catalog.predictions import (
    AnswerRecord,
    ImageRecord,
    MessageContext,
    attach_reply,
    record_predictions,
)
from catalog.retention import discard_predictions
from media.boxes import same_face
from media.decode import ImageRejected, encode_png, without_trailing_data
from media.fetch import FetchError, SafeFetcher
from models.memory import encode_embedding

if TYPE_CHECKING:
    from bot.app import NamaeBot
    from models.answer import Answer

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".avif")
# Discord's media proxies: embed images arrive through them whatever host the original was on.
PROXY_HOSTS = frozenset(
    {
        "media.discordapp.net",
        "images-ext-1.discordapp.net",
        "images-ext-2.discordapp.net",
        "cdn.discordapp.com",
    }
)
LINK_RE = re.compile(r"<?(https?://[^\s<>|]+)>?", re.IGNORECASE)
SILENT_FETCH_FAILURES = frozenset({"blocked_address", "host_not_allowed", "bad_url"})
COOLDOWN_EMOJI = "⏳"


@dataclass(frozen=True)
class ImageSource:
    kind: str  # attachment | embed | link
    url: str
    name: str
    attachment: discord.Attachment | None = None
    declared_size: int | None = None


@dataclass
class Collected:
    sources: list[ImageSource] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # name, plain-words reason
    dropped: int = 0  # beyond max_images_per_message


@dataclass
class Outcome:
    number: int
    source: ImageSource
    result: Answer | None = None
    data: bytes | None = None
    problem: str | None = None


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def is_image_attachment(attachment: discord.Attachment) -> bool:
    if attachment.content_type:
        return attachment.content_type.split(";")[0].strip().lower().startswith("image/")
    return attachment.filename.lower().endswith(IMAGE_EXTENSIONS)


def collect_sources(
    message: discord.Message, *, allowed_hosts: set[str], limit: int, explicit: bool = False
) -> Collected:
    """Every image of `message`, in order: attachments, embeds, then links. With `explicit`
    (someone asked), attachments that are not images are reported instead of skipped."""
    found = Collected()
    seen: set[str] = set()

    def add(source: ImageSource) -> None:
        if source.url in seen:
            return
        seen.add(source.url)
        found.sources.append(source)

    for attachment in message.attachments:
        if is_image_attachment(attachment):
            add(ImageSource("attachment", attachment.url, attachment.filename, attachment, attachment.size))
        elif explicit:
            found.problems.append((attachment.filename, "is not an image"))
    linked: set[str] = set()
    for embed in message.embeds:
        for part in (embed.image, embed.thumbnail):
            proxy = getattr(part, "proxy_url", None)
            original = getattr(part, "url", None)
            url = proxy or original
            if not url:
                continue
            if original:
                linked.add(original)
            if embed.url:
                linked.add(embed.url)
            add(ImageSource("embed", url, _name_of(original or url)))
            break  # the image, else the thumbnail: one picture per embed
    for match in LINK_RE.finditer(message.content or ""):
        url = match.group(1).rstrip(".,;:!?)]}'\"")
        if url in linked:
            continue  # Discord already embedded it; the proxy copy was taken above
        if _host(url) not in allowed_hosts:
            continue  # not an image host we trust: never fetched
        add(ImageSource("link", url, _name_of(url)))
    if len(found.sources) > limit:
        found.dropped = len(found.sources) - limit
        found.sources = found.sources[:limit]
    return found


def _name_of(url: str) -> str:
    path = urlsplit(url).path if "://" in url else url
    return (path.rsplit("/", 1)[-1] or "image")[:60]


class Cooldowns:
    """Per-member and per-guild buckets on classification (discord.py's own cooldown buckets)."""

    def __init__(self, bot: NamaeBot) -> None:
        s = bot.settings.discord
        self.member = commands.CooldownMapping(
            commands.Cooldown(s.member_cooldown_rate, s.member_cooldown_s), lambda key: key
        )
        self.guild = commands.CooldownMapping(
            commands.Cooldown(s.guild_cooldown_rate, s.guild_cooldown_s), lambda key: key
        )

    def retry_after(self, guild_id: int | None, member_id: int) -> tuple[float, commands.Cooldown] | None:
        now = time.time()
        member_bucket = self.member.get_bucket((guild_id, member_id), now)
        assert member_bucket is not None
        wait = member_bucket.update_rate_limit(now)
        if wait:
            return wait, member_bucket
        if guild_id is not None:
            guild_bucket = self.guild.get_bucket(guild_id, now)
            assert guild_bucket is not None
            wait = guild_bucket.update_rate_limit(now)
            if wait:
                return wait, guild_bucket
        return None


class Classify(commands.Cog):
    def __init__(self, bot: NamaeBot) -> None:
        self.bot = bot
        self.settings = bot.settings.discord
        self.allowed_hosts = {h.lower() for h in self.settings.allowed_hosts}
        self.cooldowns = Cooldowns(bot)
        self.fetcher: SafeFetcher | None = None
        self._names: dict[str, tuple[int, str] | None] = {}
        self.latencies: list[float] = []  # message seen -> reply sent, seconds
        # message id -> reply id once recorded, None when the reply could not be sent (observability)
        self.replies: dict[int, int | None] = {}
        self._answered = asyncio.Condition()
        self.ctx_menu = app_commands.ContextMenu(name="Identify character", callback=self.identify_menu)
        self.ctx_menu.guild_only = True
        bot.tree.add_command(self.ctx_menu)

    async def cog_load(self) -> None:
        self.fetcher = SafeFetcher(
            self.bot.settings.download,
            max_bytes=self.settings.max_image_bytes,
            allowed_hosts=self.allowed_hosts | PROXY_HOSTS,
            exempt_networks=self.bot.fetch_exempt_networks,
        )
        await self.fetcher.__aenter__()

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.ctx_menu.name, type=self.ctx_menu.type)
        if self.fetcher is not None:
            await self.fetcher.close()

    def forget_names(self) -> None:
        """Characters changed: resolve model labels to catalog names afresh."""
        self._names.clear()

    # -- the pieces ---------------------------------------------------------------------------

    async def names_for(self, labels: list[str]) -> dict[str, tuple[int, str] | None]:
        missing = [label for label in dict.fromkeys(labels) if label not in self._names]
        if missing:
            self._names.update(await self.bot.in_thread(resolve_labels, self.bot.engine, missing))
        return {label: self._names.get(label) for label in labels}

    async def read_source(self, source: ImageSource) -> bytes:
        limit = self.settings.max_image_bytes
        if source.attachment is not None:
            if source.declared_size is not None and source.declared_size > limit:
                raise ImageRejected("too_large", _too_large(source.declared_size, limit))
            data = await source.attachment.read()
        else:
            assert self.fetcher is not None
            fetched = await self.fetcher.fetch(source.url, max_bytes=limit)
            data = fetched.data
        if len(data) > limit:
            raise ImageRejected("too_large", _too_large(len(data), limit))
        return data

    async def answer_one(self, number: int, source: ImageSource) -> Outcome:
        outcome = Outcome(number, source)
        inference = self.bot.inference
        try:
            async with inference.slots:  # bounds downloaded-but-unclassified images in memory
                data = await self.read_source(source)
                # Only the image itself is hashed, answered and kept: a ZIP appended after a JPEG's
                # end (a polyglot) never reaches the image store.
                data = await asyncio.to_thread(without_trailing_data, data)
                outcome.result = await inference.classify(data)
                outcome.data = data
        except ImageRejected as exc:
            outcome.problem = _lower_first(exc.detail)
        except FetchError as exc:
            if exc.reason in SILENT_FETCH_FAILURES:
                outcome.problem = None
                outcome.source = ImageSource("ignored", source.url, source.name)
            elif exc.reason == "too_large":
                outcome.problem = f"too large (the limit is {self.settings.max_image_bytes:,} bytes)"
            else:
                outcome.problem = f"could not be downloaded ({exc.reason})"
        except discord.HTTPException as exc:
            outcome.problem = f"could not be downloaded (HTTP {exc.status})"
        return outcome

    async def answer_sources(self, collected: Collected) -> list[Outcome]:
        if self.bot.inference.classifier is None:
            raise NoModel()
        outcomes = await asyncio.gather(
            *(self.answer_one(i + 1, source) for i, source in enumerate(collected.sources))
        )
        kept = [o for o in outcomes if o.source.kind != "ignored"]
        for i, outcome in enumerate(kept):
            outcome.number = i + 1
        return kept

    async def build_reply(
        self,
        outcomes: list[Outcome],
        *,
        threshold: float | None,
        context: MessageContext | None,
        problems: list[tuple[str, str]] = (),  # type: ignore[assignment]
        dropped: int = 0,
    ) -> tuple[discord.Embed, discord.ui.View | None, list[int]]:
        """The reply embed and buttons; with a `context`, predictions are recorded first so that
        the buttons can carry their ids."""
        labels = [c.label for o in outcomes if o.result for f in o.result.faces for c in f.candidates]
        names = await self.names_for(labels)
        version = next(
            (o.result.model_version for o in outcomes if o.result), self.bot.inference.version or "?"
        )

        records, tags = await self.bot.in_thread(_image_records, outcomes, threshold)

        ids: list[list[int]] = [[] for _ in records]
        if context is not None and records:
            ids = await self.bot.in_thread(
                record_predictions, self.bot.engine, self.bot.store, context, records, same_face=same_face
            )

        images: list[ImageView] = []
        buttons: list[tuple[str, int]] = []
        index = 0
        for outcome in outcomes:
            if outcome.result is None:
                images.append(ImageView(outcome.number, problem=outcome.problem or "could not be read"))
                continue
            result = outcome.result
            answer_views = []
            for j, face in enumerate(result.faces):
                tag = tags[index][j]
                pid = ids[index][j] if ids[index] else None
                shown = [(_display(names, c.label), c.probability) for c in face.candidates]
                answer_views.append(
                    AnswerView(
                        image_number=outcome.number,
                        face_number=(j + 1) if face.box is not None else None,
                        candidates=shown,
                        unknown=face.with_threshold(threshold).unknown,
                        prediction_id=pid,
                        kind=face.with_threshold(threshold).kind.value,
                        examples=tuple(c.examples for c in face.candidates),
                    )
                )
                if pid is not None:
                    buttons.append((tag, pid))
            images.append(ImageView(outcome.number, answer_views, animated=result.animated))
            index += 1
        for name, reason in problems:
            images.append(ImageView(len(images) + 1, problem=f"{name} {reason}"))
        notes = []
        if dropped:
            notes.append(
                f"{dropped} more image(s) not answered (limit {self.settings.max_images_per_message})"
            )
        if len(buttons) > MAX_ANSWER_BUTTONS:
            notes.append(f"buttons for the first {MAX_ANSWER_BUTTONS} answers")
        embed = reply_embed(images, version, note="; ".join(notes) or None)
        flat = [pid for image_ids in ids for pid in image_ids]
        return embed, answer_buttons(buttons), flat

    # -- auto-classification ------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.guild is None:
            return
        reply_id: int | None = None
        try:
            reply_id = await self._answer_message(message)
        finally:
            # Every message is marked handled, ignored ones too (None), so that whoever waits on
            # it (tests, the demo) never races the bot's decision.
            await self._mark_answered(message.id, reply_id)

    async def _answer_message(self, message: discord.Message) -> int | None:
        """Classify and reply; the reply's id, or None when the message is left alone."""
        assert message.guild is not None
        started = time.perf_counter()
        config = await self.bot.in_thread(self.bot.guild_settings.get, message.guild.id)
        channel_ids = {message.channel.id, getattr(message.channel, "parent_id", None)}
        if not config.auto_classify or not any(c in config.channel_ids for c in channel_ids if c):
            return None
        collected = collect_sources(
            message, allowed_hosts=self.allowed_hosts, limit=self.settings.max_images_per_message
        )
        if not collected.sources:
            return None
        if self.cooldowns.retry_after(message.guild.id, message.author.id) is not None:
            log.info("classification cooldown for member %s in guild %s", message.author.id, message.guild.id)
            await _quietly(message.add_reaction(COOLDOWN_EMOJI))
            return None
        try:
            outcomes = await self.answer_sources(collected)
        except NoModel as exc:
            await _quietly(message.reply(str(exc), mention_author=False, allowed_mentions=NO_MENTIONS))
            return None
        if not outcomes:
            return None  # every image was a link we may not fetch
        context = MessageContext(
            guild_id=message.guild.id,
            channel_id=message.channel.id,
            message_id=message.id,
            author_id=message.author.id,
            jump_url=message.jump_url,
            model_version=self.bot.inference.version or "?",
        )
        embed, view, ids = await self.build_reply(
            outcomes, threshold=config.threshold, context=context, dropped=collected.dropped
        )
        try:
            reply = await message.reply(
                embed=embed,
                view=view,  # type: ignore[arg-type]
                mention_author=False,
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:
            # The message was deleted while we worked (or we may not post here): keep nothing.
            log.info("could not answer message %s (%s); discarding its predictions", message.id, exc.text)
            await self.bot.in_thread(
                discard_predictions, self.bot.engine, self.bot.store, ids, message.jump_url
            )
            return None
        self.latencies.append(time.perf_counter() - started)
        await self.bot.in_thread(attach_reply, self.bot.engine, ids, reply.id)
        return reply.id

    async def _mark_answered(self, message_id: int, reply_id: int | None) -> None:
        async with self._answered:
            self.replies[message_id] = reply_id
            if len(self.replies) > 10_000:  # only recent ones matter; keep memory flat
                self.replies.pop(next(iter(self.replies)))
            self._answered.notify_all()

    async def wait_answered(self, message_id: int, timeout: float = 30.0) -> int | None:
        """The reply id once the answer to `message_id` is fully recorded (None: it was dropped)."""
        async with asyncio.timeout(timeout), self._answered:
            await self._answered.wait_for(lambda: message_id in self.replies)
            return self.replies[message_id]

    # -- asked for ----------------------------------------------------------------------------

    def _check_cooldown(self, interaction: discord.Interaction) -> None:
        hit = self.cooldowns.retry_after(interaction.guild_id, interaction.user.id)
        if hit is not None:
            wait, bucket = hit
            raise app_commands.CommandOnCooldown(app_commands.Cooldown(bucket.rate, bucket.per), wait)

    async def _threshold(self, guild_id: int | None) -> float | None:
        """The guild's own threshold, if it set one (None: the model card's thresholds)."""
        if guild_id is None:
            return self.settings.default_threshold
        return (await self.bot.in_thread(self.bot.guild_settings.get, guild_id)).threshold

    @app_commands.command(name="classify", description="Who is in this picture?")
    @app_commands.describe(image="The picture", private="Only you see the answer, and nothing is kept")
    async def classify_command(
        self, interaction: discord.Interaction, image: discord.Attachment, private: bool = False
    ) -> None:
        self._check_cooldown(interaction)
        if not is_image_attachment(image):
            raise ImageRejected("not_an_image", f"{image.filename} is not an image.")
        if image.size > self.settings.max_image_bytes:
            raise ImageRejected(
                "too_large", f"{image.filename} is {_too_large(image.size, self.settings.max_image_bytes)}."
            )
        await interaction.response.defer(ephemeral=private, thinking=True)
        collected = Collected([ImageSource("attachment", image.url, image.filename, image, image.size)])
        outcomes = await self.answer_sources(collected)
        context = None
        if not private:
            context = self._interaction_context(interaction, None, interaction.user.id)
        embed, view, ids = await self.build_reply(
            outcomes, threshold=await self._threshold(interaction.guild_id), context=context
        )
        sent = await interaction.followup.send(
            embed=embed, view=view or discord.utils.MISSING, ephemeral=private, wait=True,
            allowed_mentions=NO_MENTIONS,
        )  # fmt: skip
        if ids:
            await self.bot.in_thread(attach_reply, self.bot.engine, ids, sent.id)

    async def identify_menu(self, interaction: discord.Interaction, message: discord.Message) -> None:
        self._check_cooldown(interaction)
        collected = collect_sources(
            message,
            allowed_hosts=self.allowed_hosts,
            limit=self.settings.max_images_per_message,
            explicit=True,
        )
        if not collected.sources and not collected.problems:
            await interaction.response.send_message(
                "That message has no pictures I can look at.", ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        outcomes = await self.answer_sources(collected)
        context = self._interaction_context(interaction, message, message.author.id)
        embed, view, ids = await self.build_reply(
            outcomes,
            threshold=await self._threshold(interaction.guild_id),
            context=context,
            problems=collected.problems,
            dropped=collected.dropped,
        )
        sent = await interaction.followup.send(
            embed=embed, view=view or discord.utils.MISSING, ephemeral=True, wait=True,
            allowed_mentions=NO_MENTIONS,
        )  # fmt: skip
        if ids:
            await self.bot.in_thread(attach_reply, self.bot.engine, ids, sent.id)

    def _interaction_context(
        self, interaction: discord.Interaction, message: discord.Message | None, author_id: int
    ) -> MessageContext:
        jump = (
            message.jump_url
            if message is not None
            else f"https://discord.com/channels/{interaction.guild_id or '@me'}/{interaction.channel_id}"
        )
        return MessageContext(
            guild_id=interaction.guild_id,
            channel_id=interaction.channel_id,
            message_id=message.id if message is not None else None,
            author_id=author_id,
            jump_url=jump,
            model_version=self.bot.inference.version or "?",
        )


def _image_records(
    outcomes: list[Outcome], threshold: float | None
) -> tuple[list[ImageRecord], list[list[str]]]:
    """The prediction rows of the answered images and each face's tag ("2.1": image 2, face 1).
    Runs off the event loop: it encodes the face crops."""
    records: list[ImageRecord] = []
    tags: list[list[str]] = []
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            continue
        answers: list[AnswerRecord] = []
        image_tags: list[str] = []
        with_faces = any(f.box is not None for f in result.faces)
        for face_number, face in enumerate(result.faces, start=1):
            tag = f"{outcome.number}.{face_number}" if with_faces else str(outcome.number)
            image_tags.append(tag)
            decided = face.with_threshold(threshold)
            answers.append(
                AnswerRecord(
                    candidates=[(c.label, c.probability) for c in face.candidates],
                    unknown=decided.unknown,
                    face_index=face_number - 1 if face.box is not None else None,
                    box=face.box.rect if face.box is not None else None,
                    # Level 1: a third of level 6's time for 15% more bytes, on the reply's path.
                    crop_png=encode_png(face.crop, compress_level=1) if face.crop is not None else None,
                    threshold=decided.threshold,
                    tag=tag,
                    # kept with the prediction: a label landing on it puts the face in the memory
                    embedding=encode_embedding(face.embedding) if face.embedding is not None else None,
                    kind=decided.kind.value,
                    examples=tuple(c.examples for c in face.candidates),
                )
            )
        tags.append(image_tags)
        records.append(
            ImageRecord(
                sha256=result.sha256,
                answers=answers,
                data=outcome.data,
                width=result.width,
                height=result.height,
                format=result.format,
                url=outcome.source.url if outcome.source.kind != "attachment" else outcome.source.name,
            )
        )
    return records, tags


def _display(names: dict[str, tuple[int, str] | None], label: str) -> str:
    known = names.get(label)
    return known[1] if known is not None else label


def _too_large(size: int, limit: int) -> str:
    return f"too large ({size / 1_048_576:.1f} MB; the limit is {limit / 1_048_576:.1f} MB)"


def _lower_first(text: str) -> str:
    text = text.strip().rstrip(".")
    return text[:1].lower() + text[1:] if text else "could not be read"


async def _quietly(coro: Any) -> None:
    try:
        await coro
    except discord.HTTPException as exc:
        log.debug("ignored Discord error: %s", exc)


async def setup(bot: NamaeBot) -> None:
    await bot.add_cog(Classify(bot))

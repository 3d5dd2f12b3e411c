"""Everything the bot says leaves through here, within Discord's limits and without pings.

Discord refuses a whole message (HTTP 400, code 50035) when one part is too long, so a reply that
says "done" for work that was done must never be refused for its length. Every send, response,
follow-up and edit of the bot goes through the functions below, which clip text and fit embeds
and components to the documented limits (and `AllowedMentions.none()`); builders that know their
content (lists, confirmations) page or shorten it first with `fit_lines` / `paginate`, so clipping
here is the last resort, not the layout. A test checks that no other bot module sends directly.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import discord
from discord.utils import MISSING

NO_MENTIONS = discord.AllowedMentions.none()
ELLIPSIS = "…"

# https://discord.com/developers/docs/resources/message#create-message and the embed/component limits
CONTENT_MAX = 2000
EMBEDS_MAX = 10
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELDS_MAX = 25
FIELD_NAME_MAX = 256
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
AUTHOR_MAX = 256
EMBED_TOTAL_MAX = 6000
BUTTON_LABEL_MAX = 80
SELECT_OPTIONS_MAX = 25
OPTION_TEXT_MAX = 100  # select option label, value, description
PLACEHOLDER_MAX = 150
CUSTOM_ID_MAX = 100
AUTOCOMPLETE_CHOICES_MAX = 25
CHOICE_NAME_MAX = 100


def clip(text: str, limit: int) -> str:
    """`text` within `limit` characters: cut at a line break near the end when there is one, and
    marked with an ellipsis."""
    if len(text) <= limit:
        return text
    if limit <= 1:
        return ELLIPSIS[:limit]
    cut = text[: limit - 1]
    newline = cut.rfind("\n")
    if newline >= limit * 3 // 4:
        cut = cut[: newline + 1]
    return cut + ELLIPSIS


def fit_lines(
    lines: Sequence[str], limit: int, *, more: Callable[[int], str] = lambda n: f"… and {n} more"
) -> str:
    """As many whole lines as fit in `limit` characters, then a line saying how many were left out."""
    kept: list[str] = []
    size = 0
    for index, line in enumerate(lines):
        left = len(lines) - index - 1
        tail = len(more(left)) + 1 if left else 0
        if size + len(line) + (1 if kept else 0) + tail > limit:
            omitted = len(lines) - index
            return clip("\n".join([*kept, more(omitted)]), limit)
        kept.append(line)
        size += len(line) + (1 if len(kept) > 1 else 0)
    return clip("\n".join(kept), limit)


def join_limited(items: Sequence[str], limit: int, *, separator: str = ", ") -> str:
    """Items joined by `separator` within `limit` characters; the rest counted ("and 12 more")."""
    out = ""
    for index, item in enumerate(items):
        piece = item if not out else separator + item
        left = len(items) - index - 1
        reserve = len(f" and {left} more") if left else 0
        if len(out) + len(piece) + reserve > limit:
            return clip(f"{out} and {len(items) - index} more", limit)
        out += piece
    return out


def paginate(lines: Sequence[str], *, budget: int = DESCRIPTION_MAX, per_page: int = 20) -> list[list[str]]:
    """Lines split into pages of at most `per_page` lines and `budget` characters (a line longer
    than the budget is clipped onto a page of its own). Always at least one page."""
    pages: list[list[str]] = [[]]
    size = 0
    for line in lines:
        line = clip(line, budget)
        page = pages[-1]
        if page and (len(page) >= per_page or size + 1 + len(line) > budget):
            pages.append([])
            page, size = pages[-1], 0
        size += len(line) + (1 if page else 0)
        page.append(line)
    return pages


def fit_embed(embed: discord.Embed) -> discord.Embed:
    """A copy of `embed` within every per-embed limit, 6,000 characters in all."""
    data = embed.to_dict()
    if data.get("title"):
        data["title"] = clip(data["title"], TITLE_MAX)
    if data.get("description"):
        data["description"] = clip(data["description"], DESCRIPTION_MAX)
    fields = (data.get("fields") or [])[:FIELDS_MAX]
    for field in fields:
        field["name"] = clip(str(field.get("name") or "\u200b"), FIELD_NAME_MAX)
        field["value"] = clip(str(field.get("value") or "\u200b"), FIELD_VALUE_MAX)
    if "fields" in data:
        data["fields"] = fields
    if (data.get("footer") or {}).get("text"):
        data["footer"]["text"] = clip(data["footer"]["text"], FOOTER_MAX)
    if (data.get("author") or {}).get("name"):
        data["author"]["name"] = clip(data["author"]["name"], AUTHOR_MAX)
    # Over 6,000 in all: the last fields go first, then the description is shortened (it is what
    # the embed is about, so it is kept as long as anything else has to give), then the footer.
    excess = embed_size(data) - EMBED_TOTAL_MAX
    while excess > 0 and data.get("fields"):
        data["fields"].pop()
        excess = embed_size(data) - EMBED_TOTAL_MAX
    if excess > 0 and data.get("description"):
        keep = max(0, len(data["description"]) - excess)
        data["description"] = clip(data["description"], keep) if keep else None
        excess = embed_size(data) - EMBED_TOTAL_MAX
    if excess > 0 and (data.get("footer") or {}).get("text"):
        data["footer"]["text"] = clip(data["footer"]["text"], max(1, len(data["footer"]["text"]) - excess))
    return discord.Embed.from_dict(data)


def embed_size(data: dict[str, Any]) -> int:
    """What Discord counts towards an embed's 6,000 characters."""
    size = len(data.get("title") or "") + len(data.get("description") or "")
    size += sum(len(str(f.get("name", ""))) + len(str(f.get("value", ""))) for f in data.get("fields") or [])
    size += len((data.get("footer") or {}).get("text") or "") + len(
        (data.get("author") or {}).get("name") or ""
    )
    return size


def fit_embeds(embeds: Sequence[discord.Embed]) -> list[discord.Embed]:
    """At most ten embeds, each fitted, 6,000 characters across all of them (later ones dropped)."""
    fitted: list[discord.Embed] = []
    total = 0
    for embed in embeds[:EMBEDS_MAX]:
        embed = fit_embed(embed)
        size = embed_size(embed.to_dict())
        if total + size > EMBED_TOTAL_MAX:
            break
        fitted.append(embed)
        total += size
    return fitted


def fit_view(view: discord.ui.View) -> discord.ui.View:
    """Labels and options clipped to their limits; custom ids too long are our bug, so they raise.
    (discord.py itself refuses more than 5 rows, 5 buttons a row and 25 select options.)"""
    for item in view.children:
        custom_id = getattr(item, "custom_id", None)
        if custom_id is not None and len(custom_id) > CUSTOM_ID_MAX:
            raise ValueError(f"custom_id {custom_id[:40]!r}... is longer than {CUSTOM_ID_MAX}")
        if isinstance(item, discord.ui.Button) and item.label:
            item.label = clip(item.label, BUTTON_LABEL_MAX)
        if isinstance(item, discord.ui.Select):
            if item.placeholder:
                item.placeholder = clip(item.placeholder, PLACEHOLDER_MAX)
            options = item.options[:SELECT_OPTIONS_MAX]
            for option in options:
                option.label = clip(option.label, OPTION_TEXT_MAX)
                if option.description:
                    option.description = clip(option.description, OPTION_TEXT_MAX)
                if len(option.value) > OPTION_TEXT_MAX:
                    raise ValueError(
                        f"select value {option.value[:40]!r}... is longer than {OPTION_TEXT_MAX}"
                    )
            item.options = options
    return view


def _parts(content: str | None, embed: discord.Embed | None, view: discord.ui.View | None) -> dict[str, Any]:
    parts: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
    if content is not None:
        parts["content"] = clip(content, CONTENT_MAX)
    if embed is not None:
        parts["embed"] = fit_embed(embed)
    if view is not None:
        parts["view"] = fit_view(view)
    return parts


async def respond(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = True,
) -> None:
    """Answer an interaction: its response, or a follow-up when it was already answered/deferred."""
    parts = _parts(content, embed, view)
    if interaction.response.is_done():
        await interaction.followup.send(ephemeral=ephemeral, **parts)
    else:
        await interaction.response.send_message(ephemeral=ephemeral, **parts)


async def follow_up(
    interaction: discord.Interaction,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
    ephemeral: bool = True,
) -> discord.WebhookMessage:
    """A follow-up message (after a defer, the one that replaces "thinking…"); returns it."""
    return await interaction.followup.send(wait=True, ephemeral=ephemeral, **_parts(content, embed, view))


async def update(
    interaction: discord.Interaction,
    content: str | None = MISSING,
    *,
    embed: discord.Embed | None = MISSING,
    view: discord.ui.View | None = MISSING,
) -> None:
    """Edit the message a component sits on, as the interaction's response. MISSING: unchanged;
    None: removed."""
    parts: dict[str, Any] = {"allowed_mentions": NO_MENTIONS}
    if content is not MISSING:
        parts["content"] = clip(content, CONTENT_MAX) if content is not None else None
    if embed is not MISSING:
        parts["embed"] = fit_embed(embed) if embed is not None else None
    if view is not MISSING:
        parts["view"] = fit_view(view) if view is not None else None
    await interaction.response.edit_message(**parts)


async def reply(
    message: discord.Message,
    content: str | None = None,
    *,
    embed: discord.Embed | None = None,
    view: discord.ui.View | None = None,
) -> discord.Message:
    """A reply to a member's message, without pinging them."""
    parts = _parts(content, embed, view)
    return await message.reply(mention_author=False, **parts)


async def edit(message: discord.PartialMessage | discord.Message, content: str | None) -> None:
    """Replace the text of one of the bot's messages (embeds and buttons stay)."""
    await message.edit(content=clip(content, CONTENT_MAX) if content is not None else None,
                       allowed_mentions=NO_MENTIONS)  # fmt: skip


def choices(
    pairs: Sequence[tuple[str, str]],
) -> list[discord.app_commands.Choice[str]]:
    """Autocomplete choices (name, value) within Discord's limits: 25, names and values of 1-100."""
    return [
        discord.app_commands.Choice(name=clip(name, CHOICE_NAME_MAX) or "?", value=value[:CHOICE_NAME_MAX])
        for name, value in pairs[:AUTOCOMPLETE_CHOICES_MAX]
    ]

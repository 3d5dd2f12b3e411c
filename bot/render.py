"""What the bot says: reply embeds for classifications, with every name made inert.

Every name that reaches Discord passes `safe_name`: markdown escaped, mentions broken, links and
invites defused. Every send also carries `AllowedMentions.none()` (`bot.outgoing`, and once on the
client), so even a name that slipped through could not ping anyone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import discord
from discord.utils import escape_markdown, escape_mentions

from catalog.votes import Tally

ZWSP = "\u200b"
EMBED_COLOUR = discord.Colour(0x5865F2)
MAX_NAME = 80
DESCRIPTION_LIMIT = 4000
# Hosts whose links turn into invites or embeds when posted; a zero-width space keeps them text.
_LINKY = re.compile(r"(discord(?:app)?\.(?:gg|com|io|me|li)|dsc\.gg|invite\.gg|://)", re.IGNORECASE)
_MASS_MENTION = re.compile(r"@(everyone|here)", re.IGNORECASE)


def safe_name(text: str, *, limit: int = MAX_NAME) -> str:
    """A name as inert text: no markdown, no mention, no clickable invite or link."""
    cleaned = " ".join(str(text).split())
    if len(cleaned) > limit:
        cleaned = cleaned[: limit - 1] + "…"
    cleaned = escape_mentions(cleaned)
    cleaned = _MASS_MENTION.sub(lambda m: f"@{ZWSP}{m.group(1)}", cleaned)
    cleaned = cleaned.replace("<#", f"<{ZWSP}#").replace("<@", f"<{ZWSP}@").replace("</", f"<{ZWSP}/")
    cleaned = _LINKY.sub(lambda m: m.group(1)[0] + ZWSP + m.group(1)[1:], cleaned)
    return escape_markdown(cleaned, as_needed=False)


def percent(probability: float) -> str:
    return f"{round(probability * 100):d}%"


@dataclass(frozen=True)
class AnswerView:
    """One face (or the whole image, `face_number` None) as the reply shows it."""

    image_number: int
    face_number: int | None
    candidates: list[tuple[str, float]]  # display name, calibrated probability; best first
    unknown: bool
    prediction_id: int | None = None
    tally: Tally | None = None
    kind: str | None = None  # models.openset.Kind; None: the head alone answered
    examples: tuple[int | None, ...] = ()  # per candidate: None trained, N known from N faces

    @property
    def tag(self) -> str:
        return (
            str(self.image_number) if self.face_number is None else f"{self.image_number}.{self.face_number}"
        )


@dataclass(frozen=True)
class ImageView:
    number: int
    answers: list[AnswerView] = field(default_factory=list)
    problem: str | None = None  # why this image got no answer, in plain words
    animated: bool = False


def _from_examples(answer: AnswerView, index: int) -> str:
    count = answer.examples[index] if index < len(answer.examples) else None
    if count is None:
        return ""
    return f" (from {count} example{'' if count == 1 else 's'}, no retrain yet)"


def answer_line(answer: AnswerView) -> str:
    if answer.kind == "not_character":
        return _with_tally("not a character", answer)
    if not answer.candidates:
        return "no guess (the model knows no characters yet)"
    best_name, best_p = answer.candidates[0]
    others = " · ".join(f"{safe_name(n)} {percent(p)}" for n, p in answer.candidates[1:])
    if answer.kind == "stranger":
        return _with_tally("a character I don't know", answer)
    if answer.kind == "pair" and len(answer.candidates) > 1:
        second, second_p = answer.candidates[1]
        line = (
            f"one of these two: **{safe_name(best_name)}** {percent(best_p)}{_from_examples(answer, 0)} "
            f"or **{safe_name(second)}** {percent(second_p)}{_from_examples(answer, 1)}"
        )
        return _with_tally(line, answer)
    if answer.unknown:
        head = f"not sure (best guess {safe_name(best_name)} {percent(best_p)})"
    else:
        head = f"**{safe_name(best_name)}** {percent(best_p)}{_from_examples(answer, 0)}"
    line = f"{head} · {others}" if others else head
    return _with_tally(line, answer)


def _with_tally(line: str, answer: AnswerView) -> str:
    if answer.tally is not None and answer.tally.total:
        line += "\n" + tally_line(answer.tally)
    return line


def known_line(*, version: str | None, trained: bool, faces: int, min_examples: int) -> str:
    """How the active model knows a character, for /character info."""
    if version is None:
        return "Known: no model is active yet"
    if trained:
        return f"Known: trained into model {version} ({faces} faces in its memory)"
    if faces >= min_examples:
        return f"Known: from {faces} examples in the memory, no retrain (model {version})"
    if faces:
        return f"Known: not named yet, {faces} of {min_examples} labelled faces in the memory"
    return f"Known: not by model {version} (no labelled faces in its memory)"


def tally_line(tally: Tally) -> str:
    votes = ", ".join(f"{safe_name(name)} {count}" for name, count in tally.counts)
    text = f"-# votes: {votes}"
    if tally.labelled and tally.label:
        text += f" → labelled {safe_name(tally.label)}"
    return text


def reply_embed(images: list[ImageView], model_version: str, *, note: str | None = None) -> discord.Embed:
    """One embed answering every image of a message, faces numbered `image.face`."""
    lines: list[str] = []
    several = len(images) > 1
    for image in images:
        title = f"**Image {image.number}**" if several else "**Image**"
        if image.animated:
            title += " (animated)"
        if image.problem:
            lines.append(f"{title}: {image.problem}")
            continue
        if len(image.answers) == 1 and image.answers[0].face_number is None:
            lines.append(f"{title} (no face found, whole picture): {answer_line(image.answers[0])}")
            continue
        lines.append(f"{title}: {len(image.answers)} face{'s' if len(image.answers) != 1 else ''}")
        for answer in image.answers:
            lines.append(f"> face {answer.tag}: {answer_line(answer)}")
    description = "\n".join(lines)
    if len(description) > DESCRIPTION_LIMIT:
        description = description[: DESCRIPTION_LIMIT - 1] + "…"
    embed = discord.Embed(title="Who is that?", description=description, colour=EMBED_COLOUR)
    footer = f"model {model_version}"
    if note:
        footer += f" · {note}"
    embed.set_footer(text=footer)
    return embed


def notice_embed(
    text: str, *, title: str | None = None, colour: discord.Colour | None = None
) -> discord.Embed:
    return discord.Embed(title=title, description=text, colour=colour or EMBED_COLOUR)

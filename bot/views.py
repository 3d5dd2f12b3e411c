"""Components that survive restarts: `DynamicItem`s whose custom_id carries what they act on, and
the layouts that hold them. This module owns what they all share (id parsing, the cog interfaces,
error reporting) and the answer components (Right / Fix buttons, the Fix picker, search by name);
the review queue and list pages are in `bot.moderation_views`.

The ids are only pointers. Every action re-checks on our side that the prediction or review
belongs to the guild the interaction came from, so a forged custom_id cannot reach another
guild's data, and that the member may act (moderator actions). A forged id that is no id at all
(not a number, negative, beyond 64 bits) is answered like a deleted one: "that answer no longer
exists".

The items reach the cog that acts for them through `NamaeBot.cog_of_type` and the base classes
below (`CorrectionActions`, `CharacterPages`), which the cogs implement: this module never imports
a cog, so cogs can import it.

custom_id templates (<= 100 characters):
    namae:right:<prediction>          vote for the model's best guess
    namae:fix:<prediction>            open the correction picker (ephemeral)
    namae:pick:<prediction>           the picker's select: a character id or "none"
    namae:search:<prediction>         open a search-by-name modal
    namae:review:<approve|reject>:<review>
    namae:reviews:<offset>            page through the review queue
    namae:characters:<page>           page through /character list
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.outgoing import clip
from catalog.labels import NOT_A_CHARACTER
from catalog.predictions import PredictionGone

if TYPE_CHECKING:
    from bot.app import NamaeBot

NONE_VALUE = "none"
MAX_ANSWER_BUTTONS = 10  # 2 answers (4 buttons) per row, 5 rows
ID_MAX = 2**63 - 1  # ids are SQL BIGINTs (and Discord snowflakes): anything beyond is forged
ANY = r"(?P<id>[^:]*)"  # ids are parsed (and refused) in code, not by the template
PREDICTION_GONE = "that answer no longer exists (it was deleted or has expired)"


def parse_id(text: str) -> int | None:
    """A row id from a custom_id: 1 to 2**63-1 in ASCII digits; None for anything else."""
    if not re.fullmatch(r"[0-9]{1,19}", text):
        return None
    value = int(text)
    return value if 1 <= value <= ID_MAX else None


def _prediction(prediction_id: int | None) -> int:
    if prediction_id is None:
        raise PredictionGone(PREDICTION_GONE)
    return prediction_id


class CorrectionActions:
    """What the correction buttons, select and modal ask of the cog that handles them."""

    async def vote_right(self, interaction: discord.Interaction, prediction_id: int) -> None:
        raise NotImplementedError

    async def open_picker(self, interaction: discord.Interaction, prediction_id: int) -> None:
        raise NotImplementedError

    async def vote_pick(self, interaction: discord.Interaction, prediction_id: int, value: str) -> None:
        raise NotImplementedError

    async def search_submitted(self, interaction: discord.Interaction, prediction_id: int, text: str) -> None:
        raise NotImplementedError

    async def resolve_review(
        self, interaction: discord.Interaction, review_id: int, *, approve: bool
    ) -> None:
        raise NotImplementedError

    async def show_reviews(self, interaction: discord.Interaction, offset: int, *, edit: bool) -> None:
        raise NotImplementedError


class CharacterPages:
    """What the /character list page buttons ask of the cog that handles them."""

    async def show_characters(self, interaction: discord.Interaction, page: int, *, edit: bool) -> None:
        raise NotImplementedError


def _bot(interaction: discord.Interaction) -> NamaeBot:
    return interaction.client  # type: ignore[return-value]


async def _run(interaction: discord.Interaction, action: Callable[[], Awaitable[Any]]) -> None:
    """discord.py only logs exceptions from dynamic items; ours reach the member instead."""
    try:
        await action()
    except Exception as exc:  # noqa: BLE001 - every failure gets a plain answer and a log line
        await _bot(interaction).report_error(interaction, exc)


def _corrections(interaction: discord.Interaction) -> CorrectionActions:
    return _bot(interaction).cog_of_type(CorrectionActions)


class RightButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"namae:right:{ANY}"):
    def __init__(self, prediction_id: int | None, label: str = "Right", *, raw: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.success,
                custom_id=f"namae:right:{raw if raw is not None else prediction_id}",
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> RightButton:
        return cls(parse_id(match["id"]), label=item.label or "Right", raw=match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: _corrections(interaction).vote_right(interaction, _prediction(self.prediction_id)),
        )


class FixButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"namae:fix:{ANY}"):
    def __init__(self, prediction_id: int | None, label: str = "Fix", *, raw: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label=label,
                style=discord.ButtonStyle.secondary,
                custom_id=f"namae:fix:{raw if raw is not None else prediction_id}",
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> FixButton:
        return cls(parse_id(match["id"]), label=item.label or "Fix", raw=match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: _corrections(interaction).open_picker(interaction, _prediction(self.prediction_id)),
        )


class PickSelect(discord.ui.DynamicItem[discord.ui.Select], template=rf"namae:pick:{ANY}"):
    def __init__(
        self,
        prediction_id: int | None,
        options: list[discord.SelectOption] | None = None,
        *,
        raw: str | None = None,
    ) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"namae:pick:{raw if raw is not None else prediction_id}",
                placeholder="Who is it?",
                options=options or [discord.SelectOption(label=NOT_A_CHARACTER, value=NONE_VALUE)],
                min_values=1,
                max_values=1,
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Select, match: re.Match[str], /
    ) -> PickSelect:
        return cls(parse_id(match["id"]), list(item.options), raw=match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        value = self.item.values[0] if self.item.values else NONE_VALUE
        await _run(
            interaction,
            lambda: _corrections(interaction).vote_pick(interaction, _prediction(self.prediction_id), value),
        )


class SearchButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"namae:search:{ANY}"):
    def __init__(self, prediction_id: int | None, *, raw: str | None = None) -> None:
        super().__init__(
            discord.ui.Button(
                label="Search by name…",
                style=discord.ButtonStyle.primary,
                custom_id=f"namae:search:{raw if raw is not None else prediction_id}",
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> SearchButton:
        return cls(parse_id(match["id"]), raw=match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: interaction.response.send_modal(SearchModal(_prediction(self.prediction_id))),
        )


class SearchModal(discord.ui.Modal, title="Find the character"):
    name: discord.ui.TextInput[SearchModal] = discord.ui.TextInput(
        label="Character name or alias", min_length=1, max_length=100, custom_id="name"
    )

    def __init__(self, prediction_id: int) -> None:
        super().__init__(custom_id=f"namae:searchmodal:{prediction_id}", timeout=600)
        self.prediction_id = prediction_id

    async def on_submit(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: _corrections(interaction).search_submitted(
                interaction, self.prediction_id, str(self.name)
            ),
        )

    async def on_error(self, interaction: discord.Interaction, error: Exception) -> None:
        await _bot(interaction).report_error(interaction, error)


def answer_buttons(answers: list[tuple[str, int]]) -> discord.ui.View | None:
    """Right/Fix for each (tag, prediction id); at most MAX_ANSWER_BUTTONS answers get buttons."""
    if not answers:
        return None
    view = discord.ui.View(timeout=None)
    single = len(answers) == 1
    for index, (tag, prediction_id) in enumerate(answers[:MAX_ANSWER_BUTTONS]):
        row = index // 2
        right = RightButton(prediction_id, "Right" if single else f"✓ {tag}")
        fix = FixButton(prediction_id, "Fix" if single else f"Fix {tag}")
        right.item.row = row
        fix.item.row = row
        view.add_item(right)
        view.add_item(fix)
    return view


def picker_view(prediction_id: int, choices: list[tuple[int, str, str | None]]) -> discord.ui.View:
    """The Fix picker: likely characters first (id, name, description), then 'not a character',
    and a search button for catalogs too large for one select."""
    options = [
        discord.SelectOption(label=safe_label(name), value=str(character_id), description=description)
        for character_id, name, description in choices[:24]
    ]
    options.append(
        discord.SelectOption(label="None of these / not a character", value=NONE_VALUE, emoji="🚫")
    )
    view = discord.ui.View(timeout=None)
    view.add_item(PickSelect(prediction_id, options))
    view.add_item(SearchButton(prediction_id))
    return view


def safe_label(name: str) -> str:
    """Select labels are plain text (no markdown), limited to 100 characters."""
    return clip(" ".join(name.split()), 100) or "?"

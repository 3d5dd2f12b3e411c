"""Components that survive restarts: `DynamicItem`s whose custom_id carries what they act on.

The ids are only pointers. Every action re-checks on our side that the prediction or review
belongs to the guild the interaction came from, so a forged custom_id cannot reach another
guild's data, and that the member may act (moderator actions).

custom_id templates (<= 100 characters):
    namae:right:<prediction>          vote for the model's best guess
    namae:fix:<prediction>            open the correction picker (ephemeral)
    namae:pick:<prediction>           the picker's select: a character id or "none"
    namae:search:<prediction>         open a search-by-name modal
    namae:review:<approve|reject>:<review>
    namae:reviews:<offset>            page through the review queue
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import discord

from bot.render import safe_name
from catalog.labels import NOT_A_CHARACTER

if TYPE_CHECKING:
    from bot.app import NamaeBot

NONE_VALUE = "none"
MAX_ANSWER_BUTTONS = 10  # 2 answers (4 buttons) per row, 5 rows


async def _run(interaction: discord.Interaction, action: Callable[[], Awaitable[Any]]) -> None:
    """discord.py only logs exceptions from dynamic items; ours reach the member instead."""
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    try:
        await action()
    except Exception as exc:  # noqa: BLE001 - every failure gets a plain answer and a log line
        await bot.report_error(interaction, exc)


def _corrections(interaction: discord.Interaction) -> Any:
    bot: NamaeBot = interaction.client  # type: ignore[assignment]
    return bot.get_cog("Corrections")


class RightButton(discord.ui.DynamicItem[discord.ui.Button], template=r"namae:right:(?P<pid>[0-9]{1,19})"):
    def __init__(self, prediction_id: int, label: str = "Right") -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.success, custom_id=f"namae:right:{prediction_id}"
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> RightButton:
        return cls(int(match["pid"]), label=item.label or "Right")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(interaction, lambda: _corrections(interaction).vote_right(interaction, self.prediction_id))


class FixButton(discord.ui.DynamicItem[discord.ui.Button], template=r"namae:fix:(?P<pid>[0-9]{1,19})"):
    def __init__(self, prediction_id: int, label: str = "Fix") -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.secondary, custom_id=f"namae:fix:{prediction_id}"
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> FixButton:
        return cls(int(match["pid"]), label=item.label or "Fix")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction, lambda: _corrections(interaction).open_picker(interaction, self.prediction_id)
        )


class PickSelect(discord.ui.DynamicItem[discord.ui.Select], template=r"namae:pick:(?P<pid>[0-9]{1,19})"):
    def __init__(self, prediction_id: int, options: list[discord.SelectOption] | None = None) -> None:
        super().__init__(
            discord.ui.Select(
                custom_id=f"namae:pick:{prediction_id}",
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
        return cls(int(match["pid"]), list(item.options))

    async def callback(self, interaction: discord.Interaction) -> None:
        value = self.item.values[0] if self.item.values else NONE_VALUE
        await _run(
            interaction, lambda: _corrections(interaction).vote_pick(interaction, self.prediction_id, value)
        )


class SearchButton(discord.ui.DynamicItem[discord.ui.Button], template=r"namae:search:(?P<pid>[0-9]{1,19})"):
    def __init__(self, prediction_id: int) -> None:
        super().__init__(
            discord.ui.Button(
                label="Search by name…",
                style=discord.ButtonStyle.primary,
                custom_id=f"namae:search:{prediction_id}",
            )
        )
        self.prediction_id = prediction_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> SearchButton:
        return cls(int(match["pid"]))

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(interaction, lambda: interaction.response.send_modal(SearchModal(self.prediction_id)))


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
        bot: NamaeBot = interaction.client  # type: ignore[assignment]
        await bot.report_error(interaction, error)


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=r"namae:review:(?P<action>approve|reject):(?P<rid>[0-9]{1,19})",
):
    def __init__(self, action: str, review_id: int, label: str | None = None) -> None:
        style = discord.ButtonStyle.success if action == "approve" else discord.ButtonStyle.danger
        super().__init__(
            discord.ui.Button(
                label=label or action.title(), style=style, custom_id=f"namae:review:{action}:{review_id}"
            )
        )
        self.action = action
        self.review_id = review_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> ReviewButton:
        return cls(match["action"], int(match["rid"]), item.label)

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: _corrections(interaction).resolve_review(
                interaction, self.review_id, approve=self.action == "approve"
            ),
        )


class ReviewPageButton(
    discord.ui.DynamicItem[discord.ui.Button], template=r"namae:reviews:(?P<offset>[0-9]{1,6})"
):
    def __init__(self, offset: int, label: str = "More") -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.secondary, custom_id=f"namae:reviews:{offset}"
            )
        )
        self.offset = offset

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> ReviewPageButton:
        return cls(int(match["offset"]), item.label or "More")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction, lambda: _corrections(interaction).show_reviews(interaction, self.offset, edit=True)
        )


DYNAMIC_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    RightButton,
    FixButton,
    PickSelect,
    SearchButton,
    ReviewButton,
    ReviewPageButton,
)


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
    text = " ".join(name.split())
    return text[:100] or "?"


def review_view(
    review_ids: list[int], next_offset: int | None, previous_offset: int | None
) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    for row, review_id in enumerate(review_ids[:4]):
        approve = ReviewButton("approve", review_id, f"Approve #{review_id}")
        reject = ReviewButton("reject", review_id, f"Reject #{review_id}")
        approve.item.row = row
        reject.item.row = row
        view.add_item(approve)
        view.add_item(reject)
    if previous_offset is not None:
        page = ReviewPageButton(previous_offset, "Previous")
        page.item.row = 4
        view.add_item(page)
    if next_offset is not None:
        page = ReviewPageButton(next_offset, "Next")
        page.item.row = 4
        view.add_item(page)
    return view


def describe_choice(name: str) -> str:
    return safe_name(name)

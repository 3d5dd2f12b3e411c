"""Moderation and paging components that survive restarts: the review queue's Approve / Reject
buttons and its pages, the /character list's pages, and the sets of dynamic items each cog
registers (they gather this module's items and `bot.views`' answer items).

Ids, templates and the checks every action repeats are described in `bot.views`.
"""

from __future__ import annotations

import re
from typing import Any

import discord

from bot.views import (
    ANY,
    CharacterPages,
    FixButton,
    PickSelect,
    RightButton,
    SearchButton,
    _bot,
    _corrections,
    _run,
    parse_id,
)
from catalog.errors import CatalogError


class ReviewButton(
    discord.ui.DynamicItem[discord.ui.Button],
    template=rf"namae:review:(?P<action>approve|reject):{ANY}",
):
    def __init__(
        self, action: str, review_id: int | None, label: str | None = None, *, raw: str | None = None
    ) -> None:
        style = discord.ButtonStyle.success if action == "approve" else discord.ButtonStyle.danger
        super().__init__(
            discord.ui.Button(
                label=label or action.title(),
                style=style,
                custom_id=f"namae:review:{action}:{raw if raw is not None else review_id}",
            )
        )
        self.action = action
        self.review_id = review_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> ReviewButton:
        return cls(match["action"], parse_id(match["id"]), item.label, raw=match["id"])

    async def callback(self, interaction: discord.Interaction) -> None:
        async def act() -> None:
            if self.review_id is None:
                raise CatalogError("that review no longer exists")
            await _corrections(interaction).resolve_review(
                interaction, self.review_id, approve=self.action == "approve"
            )

        await _run(interaction, act)


def _offset(text: str) -> int:
    """A page or offset from a custom_id; anything that is not a small number is the first page."""
    return int(text) if re.fullmatch(r"[0-9]{1,6}", text) else 0


class ReviewPageButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"namae:reviews:{ANY}"):
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
        return cls(_offset(match["id"]), item.label or "More")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction, lambda: _corrections(interaction).show_reviews(interaction, self.offset, edit=True)
        )


class CharacterPageButton(discord.ui.DynamicItem[discord.ui.Button], template=rf"namae:characters:{ANY}"):
    def __init__(self, page: int, label: str = "Next") -> None:
        super().__init__(
            discord.ui.Button(
                label=label, style=discord.ButtonStyle.secondary, custom_id=f"namae:characters:{page}"
            )
        )
        self.page = page

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction, item: discord.ui.Button, match: re.Match[str], /
    ) -> CharacterPageButton:
        return cls(_offset(match["id"]), item.label or "Next")

    async def callback(self, interaction: discord.Interaction) -> None:
        await _run(
            interaction,
            lambda: (
                _bot(interaction)
                .cog_of_type(CharacterPages)
                .show_characters(interaction, self.page, edit=True)
            ),
        )


CORRECTION_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (
    RightButton,
    FixButton,
    PickSelect,
    SearchButton,
    ReviewButton,
    ReviewPageButton,
)
MODERATION_ITEMS: tuple[type[discord.ui.DynamicItem[Any]], ...] = (CharacterPageButton,)


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
    _page_buttons(view, previous_offset, next_offset, ReviewPageButton)
    return view


def pages_view(page: int, pages: int) -> discord.ui.View | None:
    """Previous / Next under a /character list page (none when everything fits on one)."""
    if pages <= 1:
        return None
    view = discord.ui.View(timeout=None)
    _page_buttons(view, page - 1 if page > 0 else None, page + 1 if page + 1 < pages else None,
                  CharacterPageButton)  # fmt: skip
    return view


def _page_buttons(
    view: discord.ui.View,
    previous: int | None,
    following: int | None,
    kind: type[ReviewPageButton | CharacterPageButton],
) -> None:
    for target, label in ((previous, "Previous"), (following, "Next")):
        if target is not None:
            button = kind(target, label)
            button.item.row = 4
            view.add_item(button)

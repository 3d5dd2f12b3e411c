"""The one place that sends keeps within Discord's limits: text, lists, pages, embeds, components
and autocomplete choices, checked without Discord (the e2e limits test sends them to the fake)."""

from __future__ import annotations

import discord

from bot import outgoing
from bot.outgoing import (
    CONTENT_MAX,
    DESCRIPTION_MAX,
    EMBED_TOTAL_MAX,
    FIELD_VALUE_MAX,
    FIELDS_MAX,
    FOOTER_MAX,
    TITLE_MAX,
    clip,
    embed_size,
    fit_embed,
    fit_embeds,
    fit_lines,
    fit_view,
    join_limited,
    paginate,
)


def test_clip_keeps_short_text_and_marks_what_it_cut() -> None:
    assert clip("short", 10) == "short"
    assert clip("x" * 30, 10) == "x" * 9 + "…"
    # A line break in the last quarter is a better place to cut than mid-line.
    assert clip("a" * 80 + "\n" + "b" * 40, 100) == "a" * 80 + "\n…"
    assert len(clip("y" * 5000, CONTENT_MAX)) == CONTENT_MAX


def test_fit_lines_keeps_whole_lines_and_counts_the_rest() -> None:
    lines = [f"line {i:03d} " + "z" * 40 for i in range(200)]
    text = fit_lines(lines, 1000)
    assert len(text) <= 1000
    kept = text.splitlines()[:-1]
    assert kept == lines[: len(kept)]
    assert text.splitlines()[-1] == f"… and {200 - len(kept)} more"
    assert fit_lines(lines[:3], 1000) == "\n".join(lines[:3])


def test_join_limited_counts_the_items_left_out() -> None:
    aliases = [f"Alias number {n} of the maximal one" for n in range(1, 61)]
    text = join_limited(aliases, 1000)
    assert len(text) <= 1000
    shown = text.rsplit(" and ", 1)[0].split(", ")
    assert shown == aliases[: len(shown)]
    assert text.endswith(f" and {60 - len(shown)} more")
    assert join_limited(aliases[:2], 1000) == ", ".join(aliases[:2])


def test_paginate_by_lines_and_by_characters() -> None:
    names = [f"**{i:02d} " + "N" * 97 + "** (" + "S" * 100 + ") — 0 images" for i in range(36)]
    pages = paginate(names, per_page=15)
    assert [len(p) for p in pages] == [15, 15, 6]
    assert [line for page in pages for line in page] == names
    assert all(len("\n".join(page)) <= DESCRIPTION_MAX for page in pages)
    tight = paginate(["x" * 300] * 10, budget=1000)
    assert [len(p) for p in tight] == [3, 3, 3, 1]
    assert paginate([]) == [[]]
    assert paginate(["w" * 5000]) == [[clip("w" * 5000, DESCRIPTION_MAX)]]


def test_fit_embed_keeps_every_part_and_the_total_within_limits() -> None:
    embed = discord.Embed(title="t" * 400, description="d" * 5223)
    for i in range(30):
        embed.add_field(name=f"field {i}", value="v" * 1500)
    embed.set_footer(text="f" * 3000)
    fitted = fit_embed(embed).to_dict()
    assert len(fitted["title"]) == TITLE_MAX
    # What the embed is about is kept (shortened only by what title and footer leave); the
    # fields at the end give way.
    assert fitted["description"] == clip("d" * 5223, EMBED_TOTAL_MAX - TITLE_MAX - FOOTER_MAX)
    assert fitted["fields"] == [] and len(fitted["footer"]["text"]) == FOOTER_MAX
    assert len(fitted["fields"]) <= FIELDS_MAX
    assert all(len(f["value"]) <= FIELD_VALUE_MAX for f in fitted["fields"])
    assert embed_size(fitted) <= EMBED_TOTAL_MAX
    no_fields = discord.Embed(title="t" * 256, description="d" * 4096, colour=1)
    no_fields.set_footer(text="page 1 of 3 " + "f" * 2000)
    no_fields.set_author(name="a" * 256)
    slim = fit_embed(no_fields).to_dict()
    assert embed_size(slim) <= EMBED_TOTAL_MAX and slim["footer"]["text"].startswith("page 1 of 3")
    small = discord.Embed(title="ok", description="fine")
    assert fit_embed(small).to_dict() == small.to_dict()


def test_fit_embeds_keeps_ten_and_six_thousand_across_them() -> None:
    embeds = [discord.Embed(description="e" * 1500) for _ in range(12)]
    fitted = fit_embeds(embeds)
    assert len(fitted) == 4 and sum(embed_size(e.to_dict()) for e in fitted) <= EMBED_TOTAL_MAX
    assert len(fit_embeds([discord.Embed(title="x")] * 12)) == 10


def test_fit_view_clips_labels_and_options_and_refuses_long_custom_ids() -> None:
    view = discord.ui.View()
    view.add_item(discord.ui.Button(label="L" * 120, custom_id="namae:ok"))
    select = discord.ui.Select(custom_id="namae:pick:1", placeholder="p" * 200)
    select.options = [
        discord.SelectOption(label="o" * 150, value=str(i), description="d" * 150) for i in range(25)
    ]
    view.add_item(select)
    fit_view(view)
    button, picker = view.children
    assert isinstance(button, discord.ui.Button) and len(button.label or "") == 80
    assert isinstance(picker, discord.ui.Select) and len(picker.placeholder or "") == 150
    assert all(len(o.label) == 100 and len(o.description or "") == 100 for o in picker.options)
    forged = discord.ui.View()
    forged.add_item(discord.ui.Button(label="x", custom_id="namae:" + "9" * 100))
    try:
        fit_view(forged)
    except ValueError as exc:
        assert "longer than 100" in str(exc)
    else:
        raise AssertionError("a custom_id over 100 characters was let through")


def test_autocomplete_choices_within_limits() -> None:
    pairs = [(f"{i:02d} " + "N" * 200, "V" * 150) for i in range(40)]
    choices = outgoing.choices(pairs)
    assert len(choices) == 25
    assert all(len(c.name) <= 100 and len(c.value) <= 100 for c in choices)
    assert choices[0].name.startswith("00 ") and choices[0].name.endswith("…")

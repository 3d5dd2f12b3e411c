"""Named markdown links and title matching, including fuzzing with hypothesis."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scraper.links import markdown_links, title_mentions

FUZZ = settings(max_examples=int(os.environ.get("NAMAE_FUZZ_EXAMPLES", "150")), deadline=None)


def test_plain_named_link() -> None:
    assert markdown_links("Best girl: [Suzu Mori](https://i.redd.it/abc.jpg)!") == [
        ("Suzu Mori", "https://i.redd.it/abc.jpg")
    ]


def test_nested_brackets_escapes_and_markup_in_link_text() -> None:
    text = r"[Suzu [again]](https://a.com/1.jpg) [esc \] ok](https://a.com/2.png) [**Saki** _S._](https://a.com/3.gif)"
    assert markdown_links(text) == [
        ("Suzu [again]", "https://a.com/1.jpg"),
        ("esc ] ok", "https://a.com/2.png"),
        ("Saki S.", "https://a.com/3.gif"),
    ]


def test_angle_destination_parentheses_and_titles() -> None:
    text = '[wiki](https://en.wikipedia.org/wiki/Foo_(bar)) [angle](<https://x.com/a b.png>) [t](https://x.com/t.jpg "title")'
    assert markdown_links(text) == [
        ("wiki", "https://en.wikipedia.org/wiki/Foo_(bar)"),
        ("angle", "https://x.com/a%20b.png"),
        ("t", "https://x.com/t.jpg"),
    ]


def test_autolinks_bare_urls_images_and_code_are_not_named_links() -> None:
    text = (
        "<https://auto.link/x.png> and https://bare.com/y.jpg and ![Suzu](https://img.com/i.png)\n"
        "`[Suzu](https://code.com/c.png)`\n\n```\n[Suzu](https://fenced.com/f.png)\n```\n"
    )
    assert markdown_links(text) == []


def test_non_web_schemes_and_empty_text_are_dropped() -> None:
    assert markdown_links("[x](javascript:alert(1)) [y](ftp://a/b.png) [](https://a.com/e.png)") == []


def test_reference_links_and_multiline_text() -> None:
    text = "[Suzu\nMori][ref]\n\n[ref]: https://i.redd.it/r.jpg\n"
    assert markdown_links(text) == [("Suzu Mori", "https://i.redd.it/r.jpg")]


@pytest.mark.parametrize(
    ("title", "names", "expected"),
    [
        ("Fanart of Suzu Mori (OC)", ["Suzu Mori"], True),
        ("SŪZU in the rain", ["Suzu Mori", "Suzu"], True),
        ("suzu's new outfit", ["Suzu"], True),
        ("Suzuzu cosplay", ["Suzu"], False),
        ("Suzu_fan art", ["Suzu"], False),
        ("Mori Suzu", ["Suzu Mori"], False),
        ("suzu   mori   again", ["Suzu Mori"], True),
        ("Asuka Langley Soryu", ["Asuka Langley Sōryū"], True),
        ("ASUKA LANGLEY SŌRYŪ!", ["asuka langley soryu"], True),
        ("Zoë and friends", ["Zoe"], True),
        ("", ["Suzu"], False),
        ("Suzu", [], False),
        ("Suzu", ["  "], False),
        ("C++ chan", ["C++"], True),
    ],
)
def test_title_mentions(title: str, names: list[str], expected: bool) -> None:
    assert title_mentions(title, names) is expected


WORD = st.text(alphabet=st.characters(categories=("Ll", "Lu")), min_size=1, max_size=8)
URL = st.builds(
    lambda host, path: f"https://{host}.com/{path}.jpg",
    st.text(alphabet="abcdefghij", min_size=1, max_size=8),
    st.text(alphabet="abcdefghij0123456789", min_size=1, max_size=12),
)


@FUZZ
@given(st.text(max_size=400))
def test_fuzz_markdown_links_never_raises_and_yields_web_urls(text: str) -> None:
    for label, url in markdown_links(text):
        assert label and label == " ".join(label.split())
        assert url.lower().startswith(("http://", "https://"))
        assert not any(c.isspace() for c in url)


@FUZZ
@given(
    st.lists(st.tuples(WORD, URL), min_size=1, max_size=5),
    st.lists(st.text(alphabet="abc .,;!?\n", max_size=20)),
)
def test_fuzz_markdown_links_finds_exactly_the_links_written(
    links: list[tuple[str, str]], fillers: list[str]
) -> None:
    parts = []
    for index, (label, url) in enumerate(links):
        parts.append(fillers[index] if index < len(fillers) else " ")
        parts.append(f"[{label}]({url})")
    assert markdown_links(" ".join(parts)) == links


@FUZZ
@given(st.text(max_size=60), st.lists(st.text(max_size=20), max_size=4))
def test_fuzz_title_mentions_never_raises(title: str, names: list[str]) -> None:
    assert title_mentions(title, names) in (True, False)


ASCII_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=8)


@FUZZ
@given(ASCII_WORD, ASCII_WORD, ASCII_WORD)
def test_fuzz_whole_words_match_and_glued_words_do_not(before: str, name: str, after: str) -> None:
    assert title_mentions(f"{before} {name.upper()} {after}", [name])
    assert not title_mentions(f"{before}{name}{after}", [name])

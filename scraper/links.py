"""Named links in Reddit markdown, and whether a title or link text names a character.

Parsing is CommonMark (markdown-it-py, already installed with rich): nested brackets, backslash
escapes, `<angle>` destinations, balanced parentheses in URLs and code spans all behave as
Reddit renders them. Only `[text](url)` links count; autolinks (`<https://...>`), bare URLs and
images (`![alt](url)`) are not named links, because nothing in them says who is pictured.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from functools import lru_cache

from markdown_it import MarkdownIt
from markdown_it.token import Token

from catalog.characters import name_key

MAX_MARKDOWN_CHARS = 100_000  # Reddit caps comments at 10,000; anything longer is cut, not parsed

_parser = MarkdownIt("commonmark")


def markdown_links(text: str) -> list[tuple[str, str]]:
    """Every `[text](url)` link with an http(s) destination, in document order.

    The link text is plain text (markup stripped, whitespace collapsed); the URL is as markdown-it
    normalizes it (entities decoded, unsafe characters percent-encoded). Never raises for a str.
    """
    if not text:
        return []
    links: list[tuple[str, str]] = []
    for block in _parser.parse(text[:MAX_MARKDOWN_CHARS]):
        if block.type == "inline" and block.children:
            links.extend(_inline_links(block.children))
    return links


def _inline_links(tokens: list[Token]) -> list[tuple[str, str]]:
    links: list[tuple[str, str]] = []
    href: str | None = None
    parts: list[str] = []
    for token in tokens:
        if token.type == "link_open":
            # An autolink's text is its URL: it names nobody.
            href = None if token.markup == "autolink" else str(token.attrs.get("href", ""))
            parts = []
        elif token.type == "link_close":
            if href is not None and _is_web_url(href):
                label = " ".join("".join(parts).split())
                if label:
                    links.append((label, href))
            href = None
        elif href is not None:
            if token.type in ("text", "code_inline"):
                parts.append(token.content)
            elif token.type in ("softbreak", "hardbreak"):
                parts.append(" ")
    return links


def _is_web_url(url: str) -> bool:
    lowered = url.lower()
    return (lowered.startswith(("http://", "https://"))) and not any(c.isspace() for c in url)


def reddit_text(text: str) -> str:
    """Reddit's API escapes `&`, `<` and `>` in titles and comment bodies (unless raw_json=1)."""
    return html.unescape(text)


def title_mentions(title: str, names: Iterable[str]) -> bool:
    """Whether `title` names any of `names` as whole words, ignoring case and accents.

    "Aiko" matches "AIKŌ's new outfit" but not "Aikoko" or "Aiko_fan"; multi-word names match
    across any run of whitespace.
    """
    haystack = name_key(title)
    if not haystack:
        return False
    return any(_name_pattern(name_key(name)).search(haystack) for name in names if name_key(name))


@lru_cache(maxsize=1024)
def _name_pattern(key: str) -> re.Pattern[str]:
    words = (re.escape(word) for word in key.split(" "))
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)")

"""Which pictures a message holds (`bot.sources`), from discord.py's own `Message` built from a
gateway payload: no gateway, no fetching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import discord
from discord.state import ConnectionState

from bot.sources import collect_sources, links_in, name_of

ALLOWED = {"i.redd.it", "i.imgur.com"}


def _attachment(number: int, filename: str, content_type: str | None) -> dict[str, Any]:
    url = f"https://cdn.discordapp.com/attachments/5/{number}/{filename}"
    payload: dict[str, Any] = {"id": str(number), "filename": filename, "size": 1000 + number, "url": url}
    payload["proxy_url"] = url.replace("cdn.discordapp.com", "media.discordapp.net")
    if content_type is not None:
        payload["content_type"] = content_type
    return payload


def _message(
    content: str = "", attachments: Sequence[dict[str, Any]] = (), embeds: Sequence[dict[str, Any]] = ()
) -> discord.Message:
    # Parsing a payload needs a state object but no connection (http is only used to send).
    state = ConnectionState(
        dispatch=lambda *a, **k: None, handlers={}, hooks={}, http=None, intents=discord.Intents.default()
    )
    data = {
        "id": "10",
        "channel_id": "5",
        "type": 0,
        "content": content,
        "author": {"id": "3", "username": "member", "discriminator": "0", "avatar": None},
        "attachments": list(attachments),
        "embeds": list(embeds),
        "mentions": [],
        "mention_roles": [],
        "pinned": False,
        "mention_everyone": False,
        "tts": False,
        "timestamp": "2026-01-01T00:00:00+00:00",
        "edited_timestamp": None,
        "flags": 0,
    }
    return discord.Message(state=state, channel=discord.Object(5), data=data)  # type: ignore[arg-type]


def test_attachments_then_embeds_then_allowed_links_in_order() -> None:
    message = _message(
        "look <https://i.redd.it/a.png>, https://evil.example/x.jpg and https://i.imgur.com/b.jpg.",
        attachments=[_attachment(1, "one.jpg", "image/jpeg"), _attachment(2, "two.webp", None)],
        embeds=[
            {
                "type": "image",
                "url": "https://i.redd.it/a.png",
                "thumbnail": {
                    "url": "https://i.redd.it/a.png",
                    "proxy_url": "https://images-ext-1.discordapp.net/external/a.png",
                },
            }
        ],
    )
    found = collect_sources(message, allowed_hosts=ALLOWED, limit=10)
    assert [(s.kind, s.name) for s in found.sources] == [
        ("attachment", "one.jpg"),
        ("attachment", "two.webp"),  # no content type: its extension says image
        ("embed", "a.png"),  # through Discord's proxy; the link it embeds is not fetched again
        ("link", "b.jpg"),  # the trailing full stop is not part of the link
    ]
    assert found.sources[2].url == "https://images-ext-1.discordapp.net/external/a.png"
    assert found.sources[0].declared_size == 1001
    assert "evil.example" not in " ".join(s.url for s in found.sources)
    assert found.problems == [] and found.dropped == 0


def test_files_that_are_no_images_are_reported_only_when_asked() -> None:
    message = _message(
        attachments=[_attachment(1, "notes.txt", "text/plain"), _attachment(2, "p.png", "image/png")]
    )
    quiet = collect_sources(message, allowed_hosts=ALLOWED, limit=10)
    asked = collect_sources(message, allowed_hosts=ALLOWED, limit=10, explicit=True)
    assert [s.name for s in quiet.sources] == [s.name for s in asked.sources] == ["p.png"]
    assert quiet.problems == [] and asked.problems == [("notes.txt", "is not an image")]


def test_beyond_the_limit_images_are_counted_not_answered_and_duplicates_once() -> None:
    links = " ".join(f"https://i.redd.it/{n}.jpg" for n in range(12))
    message = _message(f"{links} https://i.redd.it/0.jpg")
    found = collect_sources(message, allowed_hosts=ALLOWED, limit=10)
    assert [s.name for s in found.sources] == [f"{n}.jpg" for n in range(10)]
    assert found.dropped == 2


def test_links_and_names() -> None:
    assert links_in("a <https://x.io/1.png> (https://y.io/2.jpg) https://z.io/3.gif!") == [
        "https://x.io/1.png",
        "https://y.io/2.jpg",
        "https://z.io/3.gif",
    ]
    assert links_in("") == []
    assert name_of("https://i.redd.it/abc.jpg?width=640") == "abc.jpg"
    assert name_of("https://i.redd.it/") == "image"
    assert len(name_of("https://i.redd.it/" + "n" * 200 + ".png")) == 60

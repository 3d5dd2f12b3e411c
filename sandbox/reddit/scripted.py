"""Scripting a world: `build_world` posts, per character, every kind of post, gallery, album,
duplicate and skip a scan meets, plus series subreddits with title mentions and an episode thread,
and records in `Expected` what every source must yield."""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from sandbox.reddit.expected import Expected, ExpectedImage
from sandbox.reddit.pictures import (
    NearDuplicate,
    Render,
    default_hostile_cases,
    default_near_duplicate,
    default_render,
)
from sandbox.reddit.world import World


def _alias_for(name: str, everyone: Sequence[str]) -> str | None:
    """The given name as an alias, unless another character's name shares that word."""
    given = name.split()[0]
    clash = any(given.lower() in other.lower().split() for other in everyone if other != name)
    return None if clash else given


def _accented(word: str) -> str:
    """'Aiko' -> 'AIKŌ': a title written in capitals with a macron still names the character."""
    marks = {"o": "Ō", "u": "Ū", "a": "Á", "e": "É", "i": "Í"}
    out = word.upper()
    for plain, accented in marks.items():
        position = word.lower().find(plain, 1)
        if position > 0:
            return out[:position] + accented + out[position + 1 :]
    return out


def _subreddit_name(text: str) -> str:
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", text)
    letters = "".join(c for c in decomposed if c.isascii() and c.isalnum())
    return letters[:21]


def build_world(
    world: World,
    characters: Sequence[Any],
    *,
    seed: int = 7,
    render: Render | None = None,
    near_duplicate: NearDuplicate | None = None,
    hostile: Sequence[tuple[str, bytes, str]] | None = None,
) -> Expected:
    """Script a world for `characters` (objects with `.name` and `.series`, like
    sandbox.characters.CharacterSpec) and record what every source must yield.

    Per character, in its own subreddit: an i.redd.it image, an i.imgur.com image, an imgur page, a
    gallery of three with one failed item, a crosspost, a post with url_overridden_by_dest, a link
    with only Reddit's preview, a two-image imgur album, an exact and a near duplicate; skipped: a
    video, a gifv, a deleted and a removed post, an NSFW post, a text post. The first character's
    subreddit also carries the hostile files. In each series subreddit: titles naming characters by
    name, by an accented alias, under another flair, and decoys that must not match; an episode
    discussion thread whose comments link images under the characters' names (some behind `more`).
    """
    render = render or default_render(seed)
    near_duplicate = near_duplicate or default_near_duplicate
    hostile = list(hostile) if hostile is not None else default_hostile_cases()
    names = [c.name for c in characters]
    images: list[ExpectedImage] = []
    album_urls: set[str] = set()
    skipped: dict[tuple[str, str], Counter[str]] = {}
    aliases: dict[str, list[str]] = {}
    own_subs: dict[str, str] = {}
    series_subs: dict[str, str] = {}
    art_sub = "SyntheticArtDump"
    title_flair, discussion_flair = "Fanart", "Episode"

    def image(kind: str, spec: Any, url: str, data: bytes, role: str = "image", **extra: Any) -> None:
        images.append(ExpectedImage(url, spec.name, kind, role, hashlib.sha256(data).hexdigest(), **extra))

    def ireddit(data: bytes, ext: str = "jpg", content_type: str = "image/jpeg") -> str:
        return world.add_file("i.redd.it", f"/{world.next_id()}x{len(world.files)}.{ext}", data, content_type)

    for spec in characters:
        alias = _alias_for(spec.name, names)
        aliases[spec.name] = [alias] if alias else []
        own_subs[spec.name] = sub = _subreddit_name(spec.name)
        series_subs[spec.name] = _subreddit_name(spec.series)
        skips: Counter[str] = Counter()
        skipped[("subreddit", spec.name)] = skips
        variant = itertools.count()

        def pic(spec: Any = spec, variant: Iterable[int] = variant) -> bytes:
            return render(spec, next(iter(variant)))

        first = pic()
        first_url = ireddit(first)
        world.add_post(sub, f"{spec.name} sketch", url=first_url, post_hint="image", domain="i.redd.it")
        image("subreddit", spec, first_url, first)

        data = pic()
        imgur_id = f"Im{world.next_id()}"
        url = world.add_file("i.imgur.com", f"/{imgur_id}.jpg", data)
        world.add_post(sub, "colour study", url=url, post_hint="image")
        image("subreddit", spec, url, data)

        data = pic()
        page_id = f"Pg{world.next_id()}"
        world.add_file("i.imgur.com", f"/{page_id}.jpg", data)
        world.add_file("imgur.com", f"/{page_id}", b"<html>imgur page</html>", "text/html")
        world.add_post(sub, "on imgur", url=world.url("imgur.com", f"/{page_id}"), post_hint="link")
        image("subreddit", spec, world.url("i.imgur.com", f"/{page_id}.jpg"), data)

        gallery_items, metadata = [], {}
        for position in range(3):
            media_id = f"m{world.next_id()}"
            gallery_items.append({"media_id": media_id, "id": position + 1})
            if position == 1:
                metadata[media_id] = {"status": "failed"}
                continue
            data = pic()
            path = f"/{media_id}.jpg"
            world.add_file("preview.redd.it", path, data)
            source = world.url("preview.redd.it", f"{path}?width=256&format=pjpg&auto=webp&s=ab{position}")
            metadata[media_id] = {
                "status": "valid",
                "e": "Image",
                "m": "image/jpeg",
                "s": {"u": source, "x": 256, "y": 256},
                "id": media_id,
            }
            image("subreddit", spec, source, data)
        gallery_id = world.next_id()
        world.add_post(
            sub,
            "gallery day",
            url=f"https://www.reddit.com/gallery/{gallery_id}",
            id=gallery_id,
            is_gallery=True,
            gallery_data={"items": gallery_items},
            media_metadata=metadata,
            domain="reddit.com",
        )
        skips["gallery_item"] += 1

        data = pic()
        url = ireddit(data)
        parent = world.add_post(art_sub, f"{spec.name} by a friend", url=url, post_hint="image")
        world.add_post(
            sub,
            f"{spec.name} by a friend",
            url=parent["permalink"],
            crosspost_parent=parent["name"],
            crosspost_parent_list=[dict(parent)],
        )
        image("subreddit", spec, url, data)

        data = pic()
        url = ireddit(data, "png", "image/png")
        world.add_post(
            sub,
            "overridden",
            url=f"https://www.reddit.com/r/{sub}/comments/zz/overridden/",
            url_overridden_by_dest=url,
        )
        image("subreddit", spec, url, data)

        data = pic()
        preview_path = f"/{world.next_id()}pv.jpg"
        world.add_file("external-preview.redd.it", preview_path, data)
        source = world.url("external-preview.redd.it", f"{preview_path}?auto=webp&s=0f1e2d")
        world.add_post(
            sub,
            "found this on an art site",
            url=world.url("art.example.com", f"/works/{world.next_id()}"),
            post_hint="link",
            preview={"images": [{"source": {"url": source, "width": 256, "height": 256}, "id": "p"}]},
        )
        image("subreddit", spec, source, data)

        album_id = f"Al{world.next_id()}"
        album: list[str] = []
        for _ in range(2):
            data = pic()
            url = world.add_file("i.imgur.com", f"/Ai{world.next_id()}.jpg", data)
            album.append(url)
            image("subreddit", spec, url, data)
        album_urls.update(album)
        world.add_post(sub, "album", url=world.add_album(album_id, album))

        url = ireddit(first)
        world.add_post(sub, "reposting my favourite", url=url)
        image("subreddit", spec, url, first, role="exact_duplicate", duplicate_of=first_url)

        data = near_duplicate(first, 0)
        url = ireddit(data)
        world.add_post(sub, "slightly edited", url=url)
        image("subreddit", spec, url, data, role="near_duplicate", duplicate_of=first_url)

        video = world.url("v.redd.it", f"/{world.next_id()}")
        world.add_post(sub, "animated", url=video, is_video=True, post_hint="hosted:video")
        world.add_post(sub, "gifv", url=world.url("i.imgur.com", f"/Gv{world.next_id()}.gifv"))
        skips["video"] += 2
        world.add_post(sub, "[deleted]", url=ireddit(pic()), author=None, removed_by_category="deleted")
        world.add_post(
            sub, "rule 3", url=ireddit(pic()), removed_by_category="moderator", selftext="[removed]"
        )
        skips["removed"] += 2
        world.add_post(sub, "spicy", url=ireddit(pic()), over_18=True)
        skips["nsfw"] += 1
        world.add_post(sub, "which episode is best?", selftext="discuss")
        skips["self_post"] += 1

    if characters and hostile:
        spec = characters[0]
        for name, data, content_type in hostile:
            url = world.add_file(
                "i.redd.it", f"/{world.next_id()}{name.replace('_', '')[:12]}.jpg", data, content_type
            )
            world.add_post(own_subs[spec.name], f"file {name}", url=url)
            image("subreddit", spec, url, data, role="hostile", hostile_case=name)

    # ---- series subreddits: title mentions ---------------------------------------------------
    for spec in characters:
        series = series_subs[spec.name]
        skips = skipped.setdefault(("title_search", spec.name), Counter())
        variant = itertools.count(100)
        data = render(spec, next(variant))
        url = ireddit(data)
        world.add_post(series, f"Fanart of {spec.name} (OC)", url=url, link_flair_text=title_flair)
        image("title_search", spec, url, data, flair=title_flair)
        if aliases[spec.name]:
            data = render(spec, next(variant))
            url = ireddit(data)
            world.add_post(
                series,
                f"{_accented(aliases[spec.name][0])} in the rain",
                url=url,
                link_flair_text=title_flair,
            )
            image("title_search", spec, url, data, flair=title_flair)
            # "Aikoko" contains "Aiko" but is someone else; the fake's loose search returns it.
            decoy = aliases[spec.name][0] + aliases[spec.name][0][-2:].lower()
            world.add_post(series, f"{decoy} cosplay", url=ireddit(render(spec, next(variant))))
            skips["no_name_match"] += 1
        data = render(spec, next(variant))
        url = ireddit(data)
        world.add_post(series, f"meme: {spec.name.upper()} again", url=url, link_flair_text="Meme")
        image("title_search", spec, url, data, flair="Meme")
        world.add_post(series, f"{spec.name} nsfw", url=ireddit(render(spec, next(variant))), over_18=True)
        skips["nsfw"] += 1

    # ---- series subreddits: an episode discussion with named links in comments -------------
    threads: dict[str, str] = {}
    by_series: dict[str, list[Any]] = {}
    for spec in characters:
        by_series.setdefault(series_subs[spec.name], []).append(spec)
    for series, members in by_series.items():
        thread = world.add_post(
            series, "Episode 3 Discussion", selftext="Spoilers ahead", link_flair_text=discussion_flair
        )
        threads[series] = thread["id"]
        late: list[tuple[Any, str, bytes]] = []
        for spec in members:
            skips = skipped.setdefault(("comment_links", spec.name), Counter())
            variant = itertools.count(200)
            data = render(spec, next(variant))
            url = ireddit(data)
            top = world.add_comment(thread["id"], f"Best scene: [{spec.name}]({url}) at 12:03")
            image("comment_links", spec, url, data)

            data = render(spec, next(variant))
            page_id = f"Cp{world.next_id()}"
            world.add_file("i.imgur.com", f"/{page_id}.jpg", data)
            label = aliases[spec.name][0] if aliases[spec.name] else spec.name
            page = world.url("imgur.com", f"/{page_id}")
            reply = world.add_comment(
                thread["id"], f"Agreed, and [{_accented(label).lower()} \\[again\\]]({page})", parent=top
            )
            image("comment_links", spec, world.url("i.imgur.com", f"/{page_id}.jpg"), data)
            youtube = f"https://www.youtube.com/watch?v={world.next_id()}"
            world.add_comment(
                thread["id"],
                f"[source]({ireddit(render(spec, next(variant)))}) and [{spec.name} OP]({youtube})",
                parent=reply,
            )
            bare = ireddit(render(spec, next(variant)))
            world.add_comment(thread["id"], f"{spec.name} {bare} (a bare link names nobody)")
            data = render(spec, next(variant))
            late.append((spec, ireddit(data), data))
        world.add_comment(thread["id"], "[deleted]", author=None)
        for spec in members:
            # A scan for one character sees every link of the thread: its own "[source]" names
            # nobody and its own named YouTube link is a video; each other member's five links
            # (three named images, "[source]", a named video) do not name it.
            skipped[("comment_links", spec.name)].update(
                {"no_name_match": 1 + 5 * (len(members) - 1), "video": 1, "removed": 1}
            )
        # Reddit sends the first top-level comments inline and the rest behind a `more`.
        world.comment_page[thread["id"]] = len(world.comments[thread["id"]])
        for spec, url, data in late:
            world.add_comment(thread["id"], f"Late to the party: [**{spec.name}**]({url})")
            image("comment_links", spec, url, data)

    expected = Expected(
        characters=names,
        aliases=aliases,
        subreddits=own_subs,
        series_subreddit=series_subs,
        discussion_threads=threads,
        discussion_flair=discussion_flair,
        title_flair=title_flair,
        images=images,
        album_urls=album_urls,
        skipped=skipped,
    )
    world.expected = expected
    return expected

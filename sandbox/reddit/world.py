"""What the fake Reddit knows: subreddits, posts, comments, imgur albums and the image files behind
their URLs, plus a scripted world whose expected scrape results are known exactly.

Posts are stored as the JSON Reddit would send (`t3` data), so what asyncpraw parses is what a
test wrote down. Ids are base36 and increase with creation time, as on Reddit.
"""

from __future__ import annotations

import hashlib
import html
import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

START_ID = int("1a0000", 36)
START_TIME = 1_700_000_000.0
REDDIT_HOSTS = ("i.redd.it", "preview.redd.it", "external-preview.redd.it", "v.redd.it")
IMGUR_HOSTS = ("i.imgur.com", "imgur.com", "api.imgur.com")
OTHER_HOSTS = ("art.example.com",)
SERVED_HOSTS = REDDIT_HOSTS + IMGUR_HOSTS + OTHER_HOSTS


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if number == 0:
            return out


@dataclass
class StoredFile:
    data: bytes
    content_type: str


@dataclass
class CommentNode:
    data: dict[str, Any]
    replies: list[CommentNode] = field(default_factory=list)


@dataclass
class World:
    """Everything the fake serves. Mutate it freely between requests (tests add posts mid-run)."""

    port: int
    clients: dict[str, str] = field(default_factory=lambda: {"fake-client": "fake-secret"})
    users: dict[str, str] = field(default_factory=lambda: {"namae-bot": "hunter2"})
    imgur_client_ids: set[str] = field(default_factory=lambda: {"fake-imgur"})
    page_size: int = 25  # Reddit's cap is 100; a small one exercises `after` pagination
    # post id -> top-level comments sent inline (default 200); the rest sit behind a `more`
    comment_page: dict[str, int] = field(default_factory=dict)
    posts: dict[str, dict[str, Any]] = field(default_factory=dict)
    subreddits: dict[str, list[str]] = field(default_factory=dict)  # lower-case name -> post ids
    comments: dict[str, list[CommentNode]] = field(default_factory=dict)  # post id -> top level
    files: dict[tuple[str, str], StoredFile] = field(default_factory=dict)
    albums: dict[str, list[str]] = field(default_factory=dict)
    expected: Expected | None = None
    next_number: int = START_ID

    # ---- building blocks -------------------------------------------------------------------
    def next_id(self) -> str:
        number, self.next_number = self.next_number, self.next_number + 1
        return base36(number)

    def created_at(self, thing_id: str) -> float:
        return START_TIME + (int(thing_id, 36) - START_ID) * 60.0

    @property
    def now(self) -> float:
        """The fake's clock: a minute per thing created, so `top?t=day` has something to cut."""
        return START_TIME + (self.next_number - START_ID) * 60.0

    def url(self, host: str, path: str) -> str:
        """The URL the fake serves `path` under: the real host name, http and the fake's port."""
        return f"http://{host}:{self.port}{path}"

    def add_file(self, host: str, path: str, data: bytes, content_type: str = "image/jpeg") -> str:
        self.files[(host, path)] = StoredFile(data, content_type)
        return self.url(host, path)

    def add_album(self, album_id: str, image_urls: list[str]) -> str:
        self.albums[album_id] = image_urls
        return self.url("imgur.com", f"/a/{album_id}")

    def add_post(
        self,
        subreddit: str,
        title: str,
        *,
        url: str | None = None,
        author: str | None = "fan",
        selftext: str = "",
        score: int = 1,
        **fields: Any,
    ) -> dict[str, Any]:
        post_id = fields.pop("id", None) or self.next_id()
        slug = "_".join(title.lower().split())[:40] or "post"
        permalink = f"/r/{subreddit}/comments/{post_id}/{slug}/"
        is_self = url is None
        data: dict[str, Any] = {
            "id": post_id,
            "name": f"t3_{post_id}",
            "subreddit": subreddit,
            "subreddit_name_prefixed": f"r/{subreddit}",
            "title": title,
            "author": author if author is not None else "[deleted]",
            "score": score,
            "ups": score,
            "num_comments": 0,
            "permalink": permalink,
            "url": url if url is not None else f"https://www.reddit.com{permalink}",
            "is_self": is_self,
            "selftext": selftext,
            "is_video": False,
            "over_18": False,
            "spoiler": False,
            "stickied": False,
            "link_flair_text": None,
            "removed_by_category": None,
            "created_utc": self.created_at(post_id),
            "domain": f"self.{subreddit}" if is_self else _domain(url or ""),
        }
        if not is_self:
            data["url_overridden_by_dest"] = url
        data.update(fields)
        self.posts[post_id] = data
        self.subreddits.setdefault(subreddit.lower(), []).append(post_id)
        self.comments.setdefault(post_id, [])
        return data

    def add_comment(
        self, post_id: str, body: str, *, parent: dict[str, Any] | None = None, author: str | None = "fan"
    ) -> dict[str, Any]:
        comment_id = self.next_id()
        post = self.posts[post_id]
        data = {
            "id": comment_id,
            "name": f"t1_{comment_id}",
            "body": body,
            "author": author if author is not None else "[deleted]",
            "link_id": f"t3_{post_id}",
            "parent_id": parent["name"] if parent else f"t3_{post_id}",
            "subreddit": post["subreddit"],
            "score": 1,
            "created_utc": self.created_at(comment_id),
            "permalink": f"{post['permalink']}{comment_id}/",
            "depth": 0,
        }
        node = CommentNode(data)
        if parent is None:
            self.comments[post_id].append(node)
        else:
            owner = self.find_comment(post_id, parent["id"])
            data["depth"] = owner.data["depth"] + 1
            owner.replies.append(node)
        post["num_comments"] += 1
        return data

    def find_comment(self, post_id: str, comment_id: str) -> CommentNode:
        stack = list(self.comments.get(post_id, []))
        while stack:
            node = stack.pop()
            if node.data["id"] == comment_id:
                return node
            stack.extend(node.replies)
        raise KeyError(comment_id)

    def listing(self, subreddit: str) -> list[dict[str, Any]]:
        return [self.posts[i] for i in self.subreddits.get(subreddit.lower(), [])]

    @property
    def hosts(self) -> dict[str, str]:
        """Static DNS overrides for DownloadSettings.hosts: every host the fake serves."""
        return dict.fromkeys(SERVED_HOSTS, "127.0.0.1")


def _domain(url: str) -> str:
    rest = url.split("://", 1)[-1]
    return rest.split("/", 1)[0].split(":", 1)[0]


def escape_reddit(value: Any) -> Any:
    """What Reddit does to text fields unless `raw_json=1`: &, < and > become entities."""
    if isinstance(value, str):
        return html.escape(value, quote=False)
    if isinstance(value, list):
        return [escape_reddit(v) for v in value]
    if isinstance(value, dict):
        return {k: escape_reddit(v) for k, v in value.items()}
    return value


# ---- the scripted world ------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedImage:
    """One image URL a scan must hand over, and what the ingest pipeline should make of it."""

    url: str
    character: str
    kind: str  # source kind: subreddit | title_search | comment_links
    role: str  # image | exact_duplicate | near_duplicate | hostile
    sha256: str
    duplicate_of: str | None = None  # the original's URL for duplicates
    hostile_case: str | None = None
    flair: str | None = None


@dataclass
class Expected:
    """The exact scrape results of a scripted world, per source kind and character."""

    characters: list[str]
    aliases: dict[str, list[str]]
    subreddits: dict[str, str]  # character -> its own subreddit
    series_subreddit: dict[str, str]  # character -> its series' subreddit
    discussion_threads: dict[str, str]  # series subreddit -> episode thread id
    discussion_flair: str
    title_flair: str
    images: list[ExpectedImage]
    album_urls: set[str]  # reachable only through imgur's API
    skipped: dict[tuple[str, str], Counter[str]]  # (kind, character) -> reason -> count

    def urls(self, kind: str, character: str, *, flair: str | None = None) -> set[str]:
        return {
            image.url
            for image in self.images
            if image.kind == kind
            and image.character == character
            and (flair is None or (image.flair or "").lower() == flair.lower())
        }

    def by_url(self) -> dict[str, ExpectedImage]:
        return {image.url: image for image in self.images}

    def distinct_images(self, character: str) -> int:
        """Images that survive exact dedup and validation (near duplicates count as one)."""
        return sum(1 for i in self.images if i.character == character and i.role == "image")


Render = Callable[[Any, int], bytes]
NearDuplicate = Callable[[bytes, int], bytes]


def default_render(seed: int) -> Render:
    """A JPEG of a synthetic character (sandbox.characters), variant `index`, the same every call."""
    import numpy as np

    from sandbox.characters import encode_jpeg, render_character

    def render(spec: Any, index: int) -> bytes:
        rng = np.random.default_rng([seed, _stable(spec.name), index])
        image, _ = render_character(spec, rng)
        return bytes(encode_jpeg(image, rng))

    return render


def default_near_duplicate(data: bytes, index: int) -> bytes:
    """Same picture, slightly brighter, resized and re-encoded: a different file, same hash."""
    import io

    from PIL import Image, ImageEnhance

    with Image.open(io.BytesIO(data)) as image:
        rgb = image.convert("RGB")
    width, height = rgb.size
    tweaked = ImageEnhance.Brightness(rgb).enhance(1.04 + 0.01 * (index % 3))
    tweaked = tweaked.resize((width - 8, height - 8))
    return _encode(tweaked, "JPEG", quality=84)


def _encode(image: Any, fmt: str, quality: int = 90) -> bytes:
    import io

    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(buffer, "JPEG", quality=quality)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def default_hostile_cases() -> list[tuple[str, bytes, str]]:
    """A few files no image pipeline should keep: (name, bytes, content type claimed)."""
    import struct
    import zlib

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return (
            struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
        )

    # 30000 x 30000 pixels declared, a few bytes of data: a decompression bomb by its header.
    bomb = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1024))
        + chunk(b"IEND", b"")
    )
    return [
        ("html_as_jpeg", b"<!doctype html><html><body>not an image</body></html>", "image/jpeg"),
        ("truncated_jpeg", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01", "image/jpeg"),
        ("empty", b"", "image/jpeg"),
        ("pixel_bomb_png", bomb, "image/png"),
    ]


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

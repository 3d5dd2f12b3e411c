"""What the fake Reddit knows: subreddits, posts, comments, imgur albums and the image files behind
their URLs, and the host names it serves them under.

Posts are stored as the JSON Reddit would send (`t3` data), so what asyncpraw parses is what a
test wrote down. Ids are base36 and increase with creation time, as on Reddit. The scripted world
and what it promises live in scripted.py, expected.py and pictures.py.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from typing import Any

from sandbox.reddit.expected import Expected

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

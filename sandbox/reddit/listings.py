"""Reddit's read endpoints as the fake answers them: subreddit listings (new, hot, top with its time
filter, `after`/`before` pagination), the loose title search, comment trees with a `more` past the
inline page, /api/morechildren, and the Listing and thing JSON shapes they share."""

from __future__ import annotations

import unicodedata
from typing import Any

from sandbox.reddit.world import CommentNode

TIME_FILTERS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 31 * 86400, "year": 366 * 86400}


class ListingRoutes:
    """Mixed into FakeReddit: the listing, search and comment answers, read from its world."""

    def _sorted(self, subreddit: str, sort: str, query: Any) -> list[dict[str, Any]] | None:
        if subreddit.lower() not in self.world.subreddits:
            return None
        posts = sorted(self.world.listing(subreddit), key=lambda p: p["created_utc"], reverse=True)
        if sort == "hot":
            posts.sort(key=lambda p: p["score"], reverse=True)  # stable: newest first among equals
        elif sort == "top":
            window = TIME_FILTERS.get(query.get("t", "day"))
            if window is not None:
                posts = [p for p in posts if p["created_utc"] >= self.world.now - window]
            posts.sort(key=lambda p: p["score"], reverse=True)
        return posts

    def _search(self, subreddit: str, query: Any) -> list[dict[str, Any]] | None:
        """Looser than Reddit's own search on purpose: any word of the query inside a title counts,
        so decoys like "Aikoko" come back and the scraper's own title match must drop them."""
        restrict = query.get("restrict_sr", "").lower() in ("on", "1", "true")
        if restrict and subreddit.lower() not in self.world.subreddits:
            return None
        posts = self.world.listing(subreddit) if restrict else list(self.world.posts.values())
        words, flair = _parse_query(query.get("q", ""))
        found = [
            p
            for p in posts
            if (flair is None or (p.get("link_flair_text") or "").lower() == flair)
            and (not words or any(w in _fold(p["title"]) for w in words))
        ]
        return sorted(found, key=lambda p: p["created_utc"], reverse=True)

    def _listing(self, items: list[dict[str, Any]] | None, query: Any) -> dict[str, Any] | None:
        if items is None:
            return None
        try:
            limit = max(1, min(int(query.get("limit", 25)), 100, self.world.page_size))
        except ValueError:
            limit = min(25, self.world.page_size)
        names = [p["name"] for p in items]
        after, before = query.get("after"), query.get("before")
        if after:
            start = names.index(after) + 1 if after in names else len(names)
            chunk = items[start : start + limit]
        elif before:
            end = names.index(before) if before in names else 0
            start = max(0, end - limit)
            chunk = items[start:end]
        else:
            start, chunk = 0, items[:limit]
        more = bool(chunk) and start + len(chunk) < len(items)
        return _listing_json(
            [_thing("t3", p) for p in chunk],
            chunk[-1]["name"] if more else None,
            chunk[0]["name"] if chunk and (after or before) and start > 0 else None,
        )

    def _comments(self, post_id: str, query: Any) -> list[Any] | None:
        post = self.world.posts.get(post_id)
        if post is None:
            return None
        top = self.world.comments.get(post_id, [])
        inline = self.world.comment_page.get(post_id, 200)
        children: list[dict[str, Any]] = [_thing("t1", _comment_json(n)) for n in top[:inline]]
        rest = top[inline:]
        if rest:
            ids = [n.data["id"] for n in rest]
            children.append(
                {
                    "kind": "more",
                    "data": {
                        "count": len(rest),
                        "name": f"t1_{ids[0]}",
                        "id": ids[0],
                        "parent_id": f"t3_{post_id}",
                        "depth": 0,
                        "children": ids,
                    },
                }
            )
        return [_listing_json([_thing("t3", post)], None, None), _listing_json(children, None, None)]

    def _morechildren(self, form: Any) -> dict[str, Any]:
        link_id = str(form.get("link_id", ""))
        post_id = link_id.removeprefix("t3_")
        wanted = [c for c in str(form.get("children", "")).split(",") if c]
        things: list[dict[str, Any]] = []
        for comment_id in wanted:
            try:
                node = self.world.find_comment(post_id, comment_id)
            except KeyError:
                continue
            stack = [node]
            while stack:  # the comment and its descendants, flat, each naming its parent
                current = stack.pop(0)
                things.append(_thing("t1", _comment_json(current, nested=False)))
                stack[:0] = current.replies
        return {"json": {"errors": [], "data": {"things": things}}}


def _thing(kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"kind": kind, "data": data}


def _listing_json(children: list[dict[str, Any]], after: str | None, before: str | None) -> dict[str, Any]:
    return {
        "kind": "Listing",
        "data": {"after": after, "before": before, "dist": len(children), "children": children},
    }


def _comment_json(node: CommentNode, *, nested: bool = True) -> dict[str, Any]:
    data = dict(node.data)
    if nested and node.replies:
        data["replies"] = _listing_json([_thing("t1", _comment_json(r)) for r in node.replies], None, None)
    else:
        data["replies"] = ""  # what Reddit sends for no replies
    return data


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _parse_query(q: str) -> tuple[list[str], str | None]:
    """Words to look for and an optional `flair:`/`flair_name:` filter, from a lucene-ish query."""
    flair = None
    words: list[str] = []
    tokens: list[str] = []
    current, quoted = "", False
    for char in q:
        if char == '"':
            quoted = not quoted
            current += char
        elif char.isspace() and not quoted:
            tokens.append(current)
            current = ""
        else:
            current += char
    tokens.append(current)
    for token in filter(None, tokens):
        key, sep, value = token.partition(":")
        if sep and key.lower() in ("flair", "flair_name", "flair_text"):
            flair = value.strip('"').lower()
        elif sep and key.lower() == "title":
            words.extend(_fold(value.strip('"')).split())
        elif token.upper() not in ("OR", "AND", "NOT"):
            words.extend(_fold(token.strip('"()')).split())
    return [w for w in words if len(w) >= 3], flair

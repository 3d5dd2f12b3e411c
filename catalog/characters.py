"""Characters and their sources: the one place that validates names, aliases and subreddits."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, selectinload

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.schema import Character, CharacterName, Image, Provenance, Source, SourceKind

SUBREDDIT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_]{1,20}$")
NAME_MAX = 100


def name_key(text: str) -> str:
    """Case- and accent-insensitive key: 'Asuka Langley Sōryū' and 'asuka langley soryu' match."""
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(stripped.casefold().split())


def slugify(text: str) -> str:
    """URL-safe where possible; letters of other scripts (四葉) are kept rather than lost."""
    return re.sub(r"[\W_]+", "-", name_key(text)).strip("-")


def clean_name(text: str, what: str = "name") -> str:
    cleaned = " ".join(text.split())
    if not cleaned:
        raise CatalogError(f"{what} is empty")
    if len(cleaned) > NAME_MAX:
        raise CatalogError(f"{what} {cleaned[:40]!r}... is longer than {NAME_MAX} characters")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise CatalogError(f"{what} {cleaned!r} contains control characters")
    if not slugify(cleaned):
        raise CatalogError(f"{what} {cleaned!r} has no letters or digits")
    return cleaned


def clean_subreddit(text: str) -> str:
    name = text.strip()
    for prefix in ("/r/", "r/"):
        if name.lower().startswith(prefix):
            name = name[len(prefix) :]
    if not SUBREDDIT_RE.match(name):
        raise CatalogError(
            f"invalid subreddit name {text!r}: 2-21 letters, digits or underscores, not starting with _"
        )
    return name


@dataclass
class NewCharacter:
    name: str
    aliases: list[str] = field(default_factory=list)
    series: str | None = None
    subreddits: list[str] = field(default_factory=list)
    title_subreddits: list[str] = field(default_factory=list)
    comment_threads: list[str] = field(default_factory=list)
    comment_subreddit: str | None = None
    flair: str | None = None
    nsfw_allowed: bool = False


def add_character(engine: Engine, spec: NewCharacter) -> int:
    """Validate everything first, then write the character, its names and sources in one
    transaction: a refused character leaves nothing behind."""
    name = clean_name(spec.name)
    aliases = [clean_name(a, "alias") for a in spec.aliases if a.strip()]
    series = clean_name(spec.series, "series") if spec.series and spec.series.strip() else None
    subreddits = [clean_subreddit(s) for s in spec.subreddits if s.strip()]
    title_subreddits = [clean_subreddit(s) for s in spec.title_subreddits if s.strip()]
    comment_subreddit = clean_subreddit(spec.comment_subreddit) if spec.comment_subreddit else None
    threads = [t.strip() for t in spec.comment_threads if t.strip()]
    for thread in threads:
        if not re.fullmatch(r"[a-z0-9]{1,12}", thread):
            raise CatalogError(f"invalid Reddit thread id {thread!r}")

    keys: dict[str, str] = {}
    for text in [name, *aliases]:
        key = name_key(text)
        if key in keys:
            raise CatalogError(f"alias {text!r} repeats {keys[key]!r}")
        keys[key] = text

    with session_scope(engine) as session:
        taken = session.scalars(select(CharacterName).where(CharacterName.key.in_(keys))).first()
        if taken is not None:
            owner = session.get(Character, taken.character_id)
            owner_name = owner.name if owner else "another character"
            raise CatalogError(f"{taken.text!r} is already a name of {owner_name!r}")
        if session.scalar(select(Character.id).where(Character.slug == slugify(name))) is not None:
            raise CatalogError(f"a character named like {name!r} already exists")
        character = Character(name=name, slug=slugify(name), series=series, active=True)
        character.names = [
            CharacterName(text=text, key=key, primary=(text == name)) for key, text in keys.items()
        ]
        sources = [
            Source(kind=SourceKind.subreddit, subreddit=s, nsfw_allowed=spec.nsfw_allowed)
            for s in dict.fromkeys(subreddits)
        ]
        sources += [
            Source(
                kind=SourceKind.title_search,
                subreddit=s,
                flair=spec.flair,
                nsfw_allowed=spec.nsfw_allowed,
            )
            for s in dict.fromkeys(title_subreddits)
        ]
        if threads or comment_subreddit:
            sources.append(
                Source(
                    kind=SourceKind.comment_links,
                    subreddit=comment_subreddit,
                    query=",".join(threads) or None,
                    flair=spec.flair,
                    nsfw_allowed=spec.nsfw_allowed,
                )
            )
        character.sources = sources
        session.add(character)
        session.flush()
        return character.id


def find_character(session: Session, name: str) -> Character:
    """By name or alias, case- and accent-insensitive; a clear error when there is none."""
    key = name_key(name)
    character = session.scalar(
        select(Character)
        .join(CharacterName)
        .where(CharacterName.key == key)
        .options(selectinload(Character.names), selectinload(Character.sources))
    )
    if character is None:
        raise CatalogError(f"no character named {name!r}")
    return character


def remove_character(engine: Engine, name: str) -> str:
    """Deactivate: the character stops being scraped and predicted, its images and labels stay
    for traceability until `purge` is asked for."""
    with session_scope(engine) as session:
        character = find_character(session, name)
        character.active = False
        for source in character.sources:
            source.active = False
        return character.name


@dataclass(frozen=True)
class CharacterInfo:
    id: int
    name: str
    aliases: list[str]
    series: str | None
    active: bool
    sources: list[str]
    images: int
    last_scrape: str | None  # the last scrape that listed every source it tried
    last_attempt: str | None  # the last scrape that tried (it may have failed)


def list_characters(engine: Engine, *, include_inactive: bool = False) -> list[CharacterInfo]:
    with session_scope(engine) as session:
        query = select(Character).options(selectinload(Character.names), selectinload(Character.sources))
        if not include_inactive:
            query = query.where(Character.active.is_(True))
        counts = dict(
            session.execute(
                select(Provenance.character_id, func.count(func.distinct(Provenance.image_id)))
                .join(Image, Image.id == Provenance.image_id)
                .where(Image.stored.is_(True))
                .group_by(Provenance.character_id)
            ).all()
        )
        return [_info(c, counts.get(c.id, 0)) for c in session.scalars(query.order_by(Character.name))]


def character_info(engine: Engine, name: str) -> CharacterInfo:
    with session_scope(engine) as session:
        character = find_character(session, name)
        images = session.scalar(
            select(func.count(func.distinct(Provenance.image_id)))
            .join(Image, Image.id == Provenance.image_id)
            .where(Provenance.character_id == character.id, Image.stored.is_(True))
        )
        return _info(character, images or 0)


def _info(character: Character, images: int) -> CharacterInfo:
    successes = [s.last_success_at for s in character.sources if s.last_success_at]
    attempts = [s.last_attempt_at for s in character.sources if s.last_attempt_at]
    return CharacterInfo(
        id=character.id,
        name=character.name,
        aliases=character.aliases,
        series=character.series,
        active=character.active,
        sources=[describe_source(s) for s in character.sources],
        images=images,
        last_scrape=max(successes).isoformat(timespec="seconds") if successes else None,
        last_attempt=max(attempts).isoformat(timespec="seconds") if attempts else None,
    )


def describe_source(source: Source) -> str:
    where = f"r/{source.subreddit}" if source.subreddit else (source.query or "")
    extra = f" flair={source.flair}" if source.flair else ""
    if source.kind == SourceKind.comment_links and source.query:
        extra += f" threads={source.query}"
    return f"{source.kind}:{where}{extra}"


# --- from model labels and search text to characters ---------------------------------------


def character_for_label(session: Session, label: str) -> Character | None:
    """The catalog character a model label names (labels are slugs or names)."""
    character = session.scalar(select(Character).where(Character.slug.in_({label, slugify(label)})))
    if character is None:
        character = session.scalar(
            select(Character).join(CharacterName).where(CharacterName.key == name_key(label))
        )
    return character


def resolve_labels(engine: Engine, labels: list[str]) -> dict[str, tuple[int, str] | None]:
    """Model labels -> (character id, display name), or None for labels the catalog lacks."""
    with session_scope(engine) as session:
        out: dict[str, tuple[int, str] | None] = {}
        for label in dict.fromkeys(labels):
            character = character_for_label(session, label)
            out[label] = (character.id, character.name) if character is not None else None
        return out


def search_characters(engine: Engine, text: str, *, limit: int = 25) -> list[tuple[int, str]]:
    """Active characters whose name or alias contains `text` (case and accent blind), best first:
    prefix matches before inner matches, then alphabetical."""
    key = name_key(text)
    with session_scope(engine) as session:
        query = (
            select(Character.id, Character.name, CharacterName.key)
            .join(CharacterName)
            .where(Character.active.is_(True))
        )
        if key:
            escaped = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(CharacterName.key.like(f"%{escaped}%", escape="\\"))
        rows = session.execute(query.order_by(Character.name).limit(limit * 4)).all()
    best: dict[int, tuple[int, str]] = {}
    for character_id, name, name_k in rows:
        rank = 0 if name_k.startswith(key) else 1
        if character_id not in best or rank < best[character_id][0]:
            best[character_id] = (rank, name)
    ordered = sorted(best.items(), key=lambda item: (item[1][0], item[1][1].casefold()))
    return [(character_id, name) for character_id, (_, name) in ordered[:limit]]

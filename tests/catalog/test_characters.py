import pytest
from sqlalchemy import Engine, func, select

from catalog.characters import (
    NewCharacter,
    add_character,
    character_info,
    clean_subreddit,
    list_characters,
    name_key,
    remove_character,
)
from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.schema import Character, CharacterName, Source, SourceKind


def _count(engine: Engine, model) -> int:
    with session_scope(engine) as session:
        return session.scalar(select(func.count()).select_from(model))


def test_add_character_with_aliases_and_sources(engine: Engine) -> None:
    add_character(
        engine,
        NewCharacter(
            name="Yotsuba Nakano",
            aliases=["Yotsuba", "Yotsubros"],
            series="The Quintessential Quintuplets",
            subreddits=["r/Yotsubros"],
            title_subreddits=["5ToubunNoHanayome"],
            comment_threads=["abc123"],
            comment_subreddit="anime",
        ),
    )
    info = character_info(engine, "  yotsuba  ")
    assert info.name == "Yotsuba Nakano"
    assert info.aliases == ["Yotsuba", "Yotsubros"]
    assert info.sources == [
        "subreddit:r/Yotsubros",
        "title_search:r/5ToubunNoHanayome",
        "comment_links:r/anime threads=abc123",
    ]
    with session_scope(engine) as session:
        kinds = sorted(session.scalars(select(Source.kind)))
    assert kinds == sorted([SourceKind.subreddit, SourceKind.title_search, SourceKind.comment_links])


def test_names_are_matched_case_and_accent_insensitively() -> None:
    assert name_key("Asuka  Langley Sōryū") == name_key("asuka langley soryu")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (NewCharacter(name="Rem", aliases=["Rem"]), "repeats"),
        (NewCharacter(name="   "), "empty"),
        (NewCharacter(name="Rem", subreddits=["not a sub!"]), "invalid subreddit"),
        (NewCharacter(name="Rem", subreddits=["_underscore"]), "invalid subreddit"),
        (NewCharacter(name="Rem", comment_threads=["../../etc"]), "thread id"),
        (NewCharacter(name="x" * 101), "longer than"),
        (NewCharacter(name="bad\x00name"), "control"),
    ],
)
def test_invalid_input_is_refused_and_nothing_written(engine: Engine, spec, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        add_character(engine, spec)
    assert _count(engine, Character) == 0 and _count(engine, Source) == 0


def test_duplicate_name_or_alias_across_characters_is_refused(engine: Engine) -> None:
    add_character(engine, NewCharacter(name="Rem", aliases=["Oni Maid"], subreddits=["Re_Zero"]))
    with pytest.raises(CatalogError, match="already a name of 'Rem'"):
        add_character(engine, NewCharacter(name="Ram", aliases=["oni maid"]))
    with pytest.raises(CatalogError, match="already a name of 'Rem'"):
        add_character(engine, NewCharacter(name="REM"))
    assert _count(engine, Character) == 1
    assert _count(engine, CharacterName) == 2


def test_remove_deactivates_and_unknown_name_errors(engine: Engine) -> None:
    add_character(engine, NewCharacter(name="Rem", subreddits=["Re_Zero"]))
    add_character(engine, NewCharacter(name="Emilia"))
    assert remove_character(engine, "rem") == "Rem"
    assert [c.name for c in list_characters(engine)] == ["Emilia"]
    assert [c.name for c in list_characters(engine, include_inactive=True)] == ["Emilia", "Rem"]
    with pytest.raises(CatalogError, match="no character named 'Ghost'"):
        remove_character(engine, "Ghost")


def test_names_in_other_scripts_are_accepted(engine: Engine) -> None:
    add_character(engine, NewCharacter(name="中野四葉", aliases=["Yotsuba"]))
    assert character_info(engine, "中野四葉").aliases == ["Yotsuba"]
    with pytest.raises(CatalogError, match="no letters or digits"):
        add_character(engine, NewCharacter(name="!!! ???"))


def test_subreddit_cleaning() -> None:
    assert clean_subreddit("/r/anime") == "anime"
    assert clean_subreddit("r/Re_Zero") == "Re_Zero"
    with pytest.raises(CatalogError):
        clean_subreddit("a")

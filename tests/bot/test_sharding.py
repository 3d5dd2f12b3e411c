"""bot/sharding.py without Discord: shard settings from the environment and the command line,
the client options they become, and IDENTIFY pacing when the catalog cannot be reached."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.sharding import (
    IdentifyPacer,
    check_session_starts,
    describe_shards,
    runs_shard_zero,
    shard_options,
    with_shards,
)
from catalog.db import make_engine
from catalog.errors import CatalogError
from catalog.identify import IdentifySlots
from catalog.settings import Settings
from catalog.settings_types import parse_shard_ids


@pytest.mark.parametrize(
    ("text", "ids"),
    [("0", [0]), ("0,1", [0, 1]), ("4-7", [4, 5, 6, 7]), ("0, 2-3", [0, 2, 3]), ("[0, 1]", [0, 1])],
)
def test_shard_ids_are_written_as_lists_and_ranges(text: str, ids: list[int]) -> None:
    assert parse_shard_ids(text) == ids


def test_environment_settings_become_client_options(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_COUNT", "8")
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_IDS", "2-3")
    settings = Settings(data_dir=tmp_path, _env_file=None).discord
    assert shard_options(settings) == {"shard_count": 8, "shard_ids": [2, 3]}
    assert not runs_shard_zero(settings)
    assert describe_shards(settings) == "shards 2, 3 of 8"
    monkeypatch.delenv("NAMAE_DISCORD__SHARD_COUNT")
    monkeypatch.delenv("NAMAE_DISCORD__SHARD_IDS")
    unset = Settings(data_dir=tmp_path, _env_file=None).discord
    assert shard_options(unset) == {} and runs_shard_zero(unset)
    assert describe_shards(unset) == "every shard, as many as Discord recommends"


def test_bad_environment_settings_are_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_IDS", "0,1")
    with pytest.raises(ValueError, match="shard_ids needs shard_count"):
        Settings(data_dir=tmp_path, _env_file=None)
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_COUNT", "2")
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_IDS", "1,1")
    with pytest.raises(ValueError, match="distinct"):
        Settings(data_dir=tmp_path, _env_file=None)


def test_command_line_overrides_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NAMAE_DISCORD__SHARD_COUNT", "4")
    settings = Settings(data_dir=tmp_path, _env_file=None)
    assert with_shards(settings, None, None) is settings
    assert with_shards(settings, None, "3").discord.shard_ids == [3]
    assert with_shards(settings, 2, "0").discord.shard_count == 2
    with pytest.raises(CatalogError, match=r"shard ids \[3\] are outside 0..1"):
        with_shards(settings, 2, "3")


def test_no_session_starts_left_is_refused() -> None:
    spent = discord.SessionStartLimits(total=1000, remaining=0, reset_after=7_200_000, max_concurrency=1)
    with pytest.raises(CatalogError, match="resets in 2.0 h"):
        check_session_starts(spent)
    check_session_starts(
        discord.SessionStartLimits(total=1000, remaining=1, reset_after=0, max_concurrency=1)
    )


async def in_thread(func: Any, *args: Any) -> Any:
    return await asyncio.to_thread(func, *args)


async def test_pacer_waits_for_its_slot_per_bucket(sqlite_engine: Any) -> None:
    pacer = IdentifyPacer(IdentifySlots(sqlite_engine, 0.2), 0.2, in_thread)
    pacer.max_concurrency = 2
    assert await pacer.before_identify(0, initial=True) == 0
    assert await pacer.before_identify(1, initial=False) == 0  # another bucket: its own pace
    started = time.monotonic()
    waited = await pacer.before_identify(2, initial=False)  # bucket 0 again
    assert 0 < waited <= pacer.slots.spacing
    assert time.monotonic() - started >= waited


async def test_pacer_without_a_catalog_paces_like_discord_py(tmp_path: Path) -> None:
    unreachable = make_engine("postgresql://namae@127.0.0.1:9/namae")
    pacer = IdentifyPacer(IdentifySlots(unreachable, 0.2), 0.2, in_thread)
    assert await pacer.before_identify(0, initial=True) == 0
    started = time.monotonic()
    assert await pacer.before_identify(1, initial=False) == 0.2
    assert time.monotonic() - started >= 0.2
    unreachable.dispose()

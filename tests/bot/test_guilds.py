"""Per-guild settings: defaults until changed, upserts, validation."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from catalog.errors import CatalogError
from catalog.guilds import GuildSettingsStore


def test_defaults_then_changes_persist(engine: Engine) -> None:
    store = GuildSettingsStore(engine, default_threshold=0.4)
    config = store.get(1)
    assert config.channel_ids == () and config.threshold == 0.4 and config.auto_classify
    assert not config.classifies_in(10)
    store.enable_channel(1, 10)
    store.enable_channel(1, 10)
    store.set_threshold(1, 0.7)
    store.set_mod_role(1, 55)
    fresh = GuildSettingsStore(engine, default_threshold=0.4).get(1)
    assert fresh.channel_ids == (10,) and fresh.threshold == 0.7 and fresh.mod_role_id == 55
    assert fresh.classifies_in(10) and not fresh.classifies_in(11)
    store.set_auto_classify(1, False)
    assert not store.get(1).classifies_in(10)
    store.set_threshold(1, None)
    assert store.get(1).threshold == 0.4
    assert store.get(2).channel_ids == ()  # another guild is untouched


def test_bad_values_are_refused(engine: Engine) -> None:
    store = GuildSettingsStore(engine)
    with pytest.raises(CatalogError):
        store.set_threshold(1, 1.5)
    with pytest.raises(CatalogError):
        store.set_channels(1, list(range(100)))
    assert store.get(1).threshold is None  # unset: the model card's thresholds decide


def test_the_cache_keeps_the_most_recently_used_guilds(sqlite_engine: Engine) -> None:
    """A bot in many guilds keeps `cache_size` of them in memory; the others are read again, so a
    change another process made shows for an evicted guild, not (yet) for a cached one."""
    store = GuildSettingsStore(sqlite_engine, cache_size=2)
    other_process = GuildSettingsStore(sqlite_engine)
    for guild in (1, 2, 3):
        assert store.get(guild).channel_ids == ()
    store.get(2)  # 2 and 3 are cached, 2 most recently used
    for guild in (1, 2, 3):
        other_process.set_channels(guild, [guild * 10])
    assert store.get(3).channel_ids == ()  # cached
    assert store.get(1).channel_ids == (10,)  # evicted, read again (now 3 and 1 are cached)
    assert store.get(2).channel_ids == (20,)  # evicted by 1

"""Leak-free splits: a near-duplicate cluster or a Reddit post never spans two sides; the frozen
test set comes back identical and grows only by new classes."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.folder_objects import FolderObjects
from trainer import TrainingError
from trainer.splits import NEAR_DUPLICATE_BITS, FrozenTestSet, group_items, near_duplicate_pairs, split


@dataclass(frozen=True)
class Fake:
    image_sha256: str
    label: str
    links: frozenset[str]
    phash: int | None


def _sha(i: int) -> str:
    return f"{i:064x}"


@st.composite
def catalogs(draw: st.DrawFn) -> list[Fake]:
    """Items with random classes, posts, near-duplicate clusters and perceptual hashes, some of
    which are a few bits from another's."""
    n = draw(st.integers(min_value=1, max_value=60))
    classes = draw(st.integers(min_value=1, max_value=5))
    items = []
    hashes: list[int] = []
    for i in range(n):
        links = set()
        if draw(st.booleans()):
            links.add(f"post:{draw(st.integers(0, 12))}")
        if draw(st.integers(0, 3)) == 0:
            links.add(f"img:{draw(st.integers(0, 8))}")
        phash = None
        if draw(st.booleans()):
            if hashes and draw(st.booleans()):
                base = hashes[draw(st.integers(0, len(hashes) - 1))]
                flips = draw(st.lists(st.integers(0, 63), max_size=NEAR_DUPLICATE_BITS + 2, unique=True))
                phash = base
                for bit in flips:
                    phash ^= 1 << bit
            else:
                phash = draw(st.integers(0, 2**64 - 1))
            hashes.append(phash)
        items.append(Fake(_sha(i), f"c{draw(st.integers(0, classes - 1))}", frozenset(links), phash))
    return items


def _linked(a: Fake, b: Fake) -> bool:
    if a.links & b.links:
        return True
    if a.phash is None or b.phash is None:
        return False
    return (a.phash ^ b.phash).bit_count() <= NEAR_DUPLICATE_BITS


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=catalogs(), seed=st.integers(0, 5))
def test_no_post_or_near_duplicate_cluster_spans_two_sides(items: list[Fake], seed: int) -> None:
    result = split(items, val_fraction=0.2, test_fraction=0.2, seed=seed)
    side = result.side_of()
    assert sorted(side) == list(range(len(items)))  # every item exactly once
    assert len(result.train) + len(result.val) + len(result.test) == len(items)
    for i, a in enumerate(items):
        for j in range(i + 1, len(items)):
            if _linked(a, items[j]):
                assert side[i] == side[j], (a, items[j])
                assert result.groups[i] == result.groups[j]


@settings(max_examples=60, deadline=None)
@given(items=catalogs())
def test_grouping_does_not_depend_on_order(items: list[Fake]) -> None:
    shuffled = items[:]
    random.Random(0).shuffle(shuffled)
    by_sha = dict(zip((i.image_sha256 for i in items), group_items(items), strict=True))
    again = dict(zip((i.image_sha256 for i in shuffled), group_items(shuffled), strict=True))
    assert by_sha == again


@settings(max_examples=40, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 2**64 - 1)), max_size=40), st.integers(0, 12))
def test_near_duplicate_pairs_match_brute_force(hashes: list[int | None], bits: int) -> None:
    expected = {
        (i, j)
        for i in range(len(hashes))
        for j in range(i + 1, len(hashes))
        if hashes[i] is not None and hashes[j] is not None and (hashes[i] ^ hashes[j]).bit_count() <= bits
    }
    assert set(near_duplicate_pairs(hashes, bits)) == expected


def _dataset(classes: int, per_class: int, seed: int = 0) -> list[Fake]:
    rng = np.random.default_rng(seed)
    items = []
    for c in range(classes):
        for k in range(per_class):
            i = c * 1000 + k
            post = frozenset({f"post:{c}-{k // 3}"})  # three images per post
            items.append(Fake(_sha(i), f"c{c}", post, int(rng.integers(0, 2**63))))
    return items


def test_frozen_test_set_is_stable_across_runs_and_grows_only_by_new_classes(tmp_path: Path) -> None:
    store, key = FolderObjects(tmp_path), "frozen.json"
    first = split(
        _dataset(4, 30), val_fraction=0.15, test_fraction=0.2, seed=1, frozen=FrozenTestSet.load(store, key)
    )
    first.frozen.save(store, key)
    items = _dataset(4, 30)
    test_shas = {items[i].image_sha256 for i in first.test}
    assert test_shas and set(FrozenTestSet.load(store, key).members) == test_shas
    assert {items[i].label for i in first.test} == {"c0", "c1", "c2", "c3"}

    # Same data in another order, another seed for the rest, more images of old classes and a new class.
    more = _dataset(5, 36)
    random.Random(5).shuffle(more)
    second = split(more, val_fraction=0.15, test_fraction=0.2, seed=99, frozen=FrozenTestSet.load(store, key))
    second_test = {more[i].image_sha256 for i in second.test}
    old_classes_test = {more[i].image_sha256 for i in second.test if more[i].label != "c4"}
    assert old_classes_test == test_shas  # new images of old classes never enter the frozen test set
    assert second.new_test_classes == ["c4"]
    assert any(more[i].label == "c4" for i in second.test)
    assert set(second.frozen.members) == second_test
    assert second.frozen.fingerprint() != first.frozen.fingerprint()


def test_a_new_repost_of_a_frozen_test_image_joins_the_test_side() -> None:
    items = _dataset(2, 20)
    first = split(items, val_fraction=0.2, test_fraction=0.2, seed=3)
    frozen_one = items[first.test[0]]
    repost = Fake(_sha(999_999), frozen_one.label, frozenset({"post:new"}), frozen_one.phash ^ 0b101)
    second = split([*items, repost], val_fraction=0.2, test_fraction=0.2, seed=3, frozen=first.frozen)
    assert second.side_of()[len(items)] == "test"


def test_an_unreadable_frozen_file_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "frozen.json").write_text("{not json")
    with pytest.raises(TrainingError, match="frozen test set .*frozen.json is unreadable"):
        FrozenTestSet.load(FolderObjects(tmp_path), "frozen.json")


def test_items_kept_for_training_only_never_validate_or_test_and_their_posts_follow() -> None:
    items = _dataset(3, 30, seed=4)
    baseline = split(items, val_fraction=0.2, test_fraction=0.2, seed=2)
    # Every second item the baseline held out: without the rule they would validate or test.
    held = [*baseline.val[::2], *baseline.test[::2]]
    result = split(items, val_fraction=0.2, test_fraction=0.2, seed=2, train_only=held)
    side = result.side_of()
    assert held and all(side[i] == "train" for i in held)
    for i in held:  # the rest of each one's post trains too: a post never spans two sides
        assert all(side[j] == "train" for j in range(len(items)) if items[j].links == items[i].links)
    assert {items[i].label for i in result.test} == {"c0", "c1", "c2"}  # every class is still tested
    assert {items[i].label for i in result.val} == {"c0", "c1", "c2"}

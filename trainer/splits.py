"""Leak-free train/validation/test splits and the frozen test set.

Items are grouped before anything is split: two items share a group when they share a link key
(the same image, a near-duplicate cluster from the catalog, the same Reddit post) or when their
perceptual hashes are within `NEAR_DUPLICATE_BITS` of each other. A whole group always lands on
one side, so a repost, a crop of the same picture or a second image of one gallery post never
scores as a test success it only memorized.

The test set is frozen: the image sha256s chosen the first time are written to a JSON file and
every later run puts those images (and whatever is now grouped with them) back in test, so that
model versions are compared on the same pictures. Classes the file has never seen get their test
members chosen deterministically by hash and are added to the file.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from catalog.objects import ObjectStore

log = logging.getLogger(__name__)

# Hamming distances (64-bit pHash) at or below which two pictures count as one. Measured on the
# sandbox's near-duplicates (10 characters x 40 portraits + 40 reposts): the whole-picture hash at
# 8 bits catches every re-encode, resize, watermark and recolour and most crops (38 of 40 reposts)
# with 20 false pairs in 96,540; the face-crop hash at 6 bits catches some crops the whole-picture
# hash misses. Larger thresholds start chaining distinct portraits of one character together.
NEAR_DUPLICATE_BITS = 8
CROP_NEAR_DUPLICATE_BITS = 6
LARGE_GROUP_SHARE = 0.05  # a group holding more than this share of the data is reported
FROZEN_FORMAT = 1
_PHASH_CHUNK = 2048


class Groupable(Protocol):
    @property
    def image_sha256(self) -> str: ...
    @property
    def label(self) -> str: ...
    @property
    def links(self) -> frozenset[str]: ...
    @property
    def phash(self) -> int | None: ...


class _UnionFind:
    def __init__(self, size: int) -> None:
        self.parent = list(range(size))

    def find(self, index: int) -> int:
        root = index
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[index] != root:  # path compression
            self.parent[index], index = root, self.parent[index]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def near_duplicate_pairs(
    hashes: Sequence[int | None], max_bits: int = NEAR_DUPLICATE_BITS
) -> list[tuple[int, int]]:
    """Index pairs whose 64-bit hashes differ in at most `max_bits` bits (chunked, all pairs)."""
    present = [(i, h) for i, h in enumerate(hashes) if h is not None]
    if len(present) < 2:
        return []
    index = np.array([i for i, _ in present])
    values = np.array([h for _, h in present], dtype=np.uint64)
    pairs: list[tuple[int, int]] = []
    for start in range(0, len(values), _PHASH_CHUNK):
        block = values[start : start + _PHASH_CHUNK]
        distance = np.bitwise_count(block[:, None] ^ values[None, :])
        rows, cols = np.nonzero(distance <= max_bits)
        for r, c in zip(rows + start, cols, strict=True):
            if r < c:
                pairs.append((int(index[r]), int(index[c])))
    return pairs


def group_items(items: Sequence[Groupable], max_bits: int = NEAR_DUPLICATE_BITS) -> list[str]:
    """One group id per item; items linked directly or transitively share it (a shared link key,
    or whole-picture, mirrored-picture or face-crop hashes within `max_bits`). The id is the
    smallest image sha256 in the group, so it does not depend on the order of `items`."""
    finder = _UnionFind(len(items))
    owner: dict[str, int] = {}
    for index, item in enumerate(items):
        for key in (f"sha:{item.image_sha256}", *item.links):
            if key in owner:
                finder.union(owner[key], index)
            else:
                owner[key] = index
    for a, b in near_duplicate_pairs([item.phash for item in items], max_bits):
        finder.union(a, b)
    # A mirrored repost: one picture's hash near the other's mirrored one.
    mirrors = [getattr(item, "mirror_phash", None) for item in items]
    if any(m is not None for m in mirrors):
        count = len(items)
        for a, b in near_duplicate_pairs([item.phash for item in items] + mirrors, max_bits):
            if (a < count) != (b < count):
                finder.union(a % count, b % count)
    crop_hashes = [getattr(item, "crop_phash", None) for item in items]
    for a, b in near_duplicate_pairs(crop_hashes, max_bits + CROP_NEAR_DUPLICATE_BITS - NEAR_DUPLICATE_BITS):
        finder.union(a, b)
    smallest: dict[int, str] = {}
    for index, item in enumerate(items):
        root = finder.find(index)
        if root not in smallest or item.image_sha256 < smallest[root]:
            smallest[root] = item.image_sha256
    return [smallest[finder.find(i)] for i in range(len(items))]


@dataclass
class FrozenTestSet:
    """The persisted test members: image sha256 -> label, plus the classes the file has covered."""

    members: dict[str, str] = field(default_factory=dict)
    classes: set[str] = field(default_factory=set)
    created_at: str | None = None

    @classmethod
    def load(cls, objects: ObjectStore, key: str) -> FrozenTestSet:
        """The set stored at `key` (every trainer, on any machine, reads the same one), or an
        empty one when there is none yet."""
        current = objects.get_versioned(key)
        if current is None:
            return cls()
        try:
            data = json.loads(current.data)
            return cls(
                members={str(k): str(v) for k, v in data["members"].items()},
                classes=set(data["classes"]),
                created_at=data.get("created_at"),
            )
        except (UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
            from trainer import TrainingError

            raise TrainingError(
                f"the frozen test set {objects.location}/{key} is unreadable ({exc}); fix or remove it "
                "(removing it starts a new test set, and versions stop being comparable)"
            ) from exc

    def save(self, objects: ObjectStore, key: str) -> None:
        data = {
            "format": FROZEN_FORMAT,
            "created_at": self.created_at or datetime.now(UTC).isoformat(),
            "updated_at": datetime.now(UTC).isoformat(),
            "classes": sorted(self.classes),
            "members": dict(sorted(self.members.items())),
        }
        objects.put(key, json.dumps(data, indent=1).encode("utf-8"))

    def fingerprint(self) -> str:
        return hashlib.sha256("\n".join(sorted(self.members)).encode()).hexdigest()[:16]


@dataclass
class Split:
    train: list[int]
    val: list[int]
    test: list[int]
    groups: list[str]
    frozen: FrozenTestSet
    new_test_classes: list[str]

    def side_of(self) -> dict[int, str]:
        sides = {i: "train" for i in self.train}
        sides.update({i: "val" for i in self.val})
        sides.update({i: "test" for i in self.test})
        return sides


def _rank(seed: int, group: str) -> str:
    return hashlib.sha256(f"{seed}:{group}".encode()).hexdigest()


def _group_label(indices: Iterable[int], labels: Sequence[str]) -> str:
    counts = Counter(labels[i] for i in indices)
    return min(counts, key=lambda label: (-counts[label], label))


def _take_fraction(
    group_ids: list[str], members: dict[str, list[int]], fraction: float, seed: int, salt: str
) -> set[str]:
    """Groups of one class, in hash order, until `fraction` of its items is reached (at least one
    group when the class has three or more, so every side sees every class)."""
    ordered = sorted(group_ids, key=lambda g: _rank(seed, f"{salt}:{g}"))
    total = sum(len(members[g]) for g in ordered)
    wanted = fraction * total
    chosen: set[str] = set()
    taken = 0
    for group in ordered:
        if taken >= wanted or len(chosen) >= len(ordered) - 1:
            break
        if taken > 0 and taken + len(members[group]) > wanted * 1.5:
            continue  # a big cluster would overshoot; the next group may fit better
        chosen.add(group)
        taken += len(members[group])
    if not chosen and len(ordered) >= 3 and fraction > 0:
        chosen.add(ordered[0])
    return chosen


def split(
    items: Sequence[Groupable],
    *,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    frozen: FrozenTestSet | None = None,
    max_bits: int = NEAR_DUPLICATE_BITS,
    train_only: Collection[int] = (),
) -> Split:
    """Group, then split: frozen test members (and their groups) go to test; classes new to the
    frozen set get test groups by hash; validation groups come from what is left, per class.
    Groups holding an item of `train_only` (indices) are never chosen for validation or test."""
    frozen = frozen or FrozenTestSet()
    labels = [item.label for item in items]
    groups = group_items(items, max_bits)
    members: dict[str, list[int]] = defaultdict(list)
    for index, group in enumerate(groups):
        members[group].append(index)
    group_label = {g: _group_label(idx, labels) for g, idx in members.items()}
    largest = max((len(idx) for idx in members.values()), default=0)
    if len(items) >= 100 and largest > LARGE_GROUP_SHARE * len(items):
        log.warning(
            "one group of near-duplicates/posts holds %d of %d images; the split has less freedom",
            largest,
            len(items),
        )

    test_groups = {groups[i] for i, item in enumerate(items) if item.image_sha256 in frozen.members}
    by_class: dict[str, list[str]] = defaultdict(list)
    for group in sorted(members):
        by_class[group_label[group]].append(group)

    held_back = {groups[i] for i in train_only}
    new_classes = sorted(set(by_class) - frozen.classes)
    for label in new_classes:
        eligible = [g for g in by_class[label] if g not in held_back]
        test_groups |= _take_fraction(eligible, members, test_fraction, seed, "test")

    val_groups: set[str] = set()
    remaining_fraction = val_fraction / max(1e-9, 1.0 - test_fraction)
    for label in sorted(by_class):
        candidates = [g for g in by_class[label] if g not in test_groups and g not in held_back]
        val_groups |= _take_fraction(candidates, members, min(remaining_fraction, 0.9), seed, "val")

    train, val, test = [], [], []
    for index, group in enumerate(groups):
        (test if group in test_groups else val if group in val_groups else train).append(index)

    # A class counts as covered only once it has test members; a class too small to spare a
    # group for test now gets its test members in a later run, when it has more images.
    covered = {labels[i] for i in test}
    updated = FrozenTestSet(
        members=dict(frozen.members),
        classes=frozen.classes | (set(new_classes) & covered),
        created_at=frozen.created_at,
    )
    for index in test:
        updated.members.setdefault(items[index].image_sha256, labels[index])
    added = sorted(set(new_classes) & covered)
    if added:
        log.info("test set: %d new classes get frozen test members: %s", len(added), ", ".join(added))
    return Split(train, val, test, groups, updated, added)

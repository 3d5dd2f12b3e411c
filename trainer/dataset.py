"""The labelled set: its items (`Item`, `Assembled`), class filtering and the per-class cap, the
refusal of what cannot make a classifier, and the torch datasets over the items. The items come
from a folder per character (`trainer.folder_source`) or from the catalog (`trainer.catalog_source`).
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from catalog.settings import Settings
from catalog.store import ImageStore
from media.decode import ImageRejected, decode_image
from models.preprocess import prepare
from trainer import TrainingError
from trainer.augment import to_chw

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Item:
    """One training example. `key` names the pixels (face crop or whole image); `image_sha256` the
    source picture (the frozen test set and grouping work on pictures); `links` ties items that must
    stay on one side of a split (post ids, near-duplicate clusters)."""

    key: str
    image_sha256: str
    label: str
    links: frozenset[str] = frozenset()
    phash: int | None = None  # of the whole picture
    crop_phash: int | None = None  # of the face crop: a cropped repost keeps the face
    # Of the mirrored picture: a flipped repost is near it (catalog items are linked by the
    # scraper's flip-tolerant dedup instead).
    mirror_phash: int | None = None
    pixels: np.ndarray | None = field(default=None, compare=False, repr=False)  # prepared, in memory
    store_sha256: str | None = None  # else: read from the image store when needed
    origin: str = "folder"
    # Chosen by a model among the faces of a group picture (trainer.group_faces): learnt from, but
    # never in validation or test, where it would favour what the previous model already names.
    train_only: bool = False


@dataclass
class Assembled:
    items: list[Item]
    source: str  # "catalog" or "folder:<path>"
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    dropped_classes: dict[str, int] = field(default_factory=dict)  # class -> images it had
    capped_classes: dict[str, int] = field(default_factory=dict)  # class -> images before the cap
    warnings: list[str] = field(default_factory=list)
    declared: set[str] = field(default_factory=set)  # every class the source names, even empty ones
    picked: Counter[str] = field(default_factory=Counter)  # model version -> faces it chose in groups

    @property
    def labels(self) -> list[str]:
        return sorted({item.label for item in self.items})

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(item.label for item in self.items).items()))

    def fingerprint(self) -> str:
        digest = hashlib.sha256()
        for item in sorted(self.items, key=lambda i: i.key):
            digest.update(f"{item.key}\t{item.label}\n".encode())
        return digest.hexdigest()[:16]


def _phash(rgb: np.ndarray) -> int:
    from media.hashes import perceptual_hashes

    return perceptual_hashes(rgb)[0]


# --- filtering -----------------------------------------------------------------------------------


def _hash_rank(seed: int, key: str) -> str:
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()


def filter_classes(
    assembled: Assembled,
    *,
    min_images: int,
    max_images: int,
    seed: int,
    keep: set[str] | None = None,
) -> Assembled:
    """Leave out classes under `min_images` (with a warning) and cap each class at `max_images`,
    keeping the images in `keep` (the frozen test set) first, the rest chosen by hash."""
    keep = keep or set()
    by_class: dict[str, list[Item]] = defaultdict(list)
    for item in assembled.items:
        by_class[item.label].append(item)
    kept: list[Item] = []
    for label in sorted(set(by_class) | assembled.declared):
        members = by_class.get(label, [])
        if len(members) < min_images:
            message = (
                f"class {label!r} left out: {len(members)} images, fewer than the minimum of {min_images}"
            )
            log.warning(message)
            assembled.warnings.append(message)
            assembled.dropped_classes[label] = len(members)
            continue
        if len(members) > max_images:
            members = sorted(members, key=lambda i: (i.image_sha256 not in keep, _hash_rank(seed, i.key)))
            assembled.capped_classes[label] = len(members)
            log.info("class %r capped at %d of %d images", label, max_images, len(members))
            members = members[:max_images]
        kept.extend(members)
    for message in assembled.warnings:
        if "has no image files" in message:
            log.warning(message)
    assembled.items = sorted(kept, key=lambda i: (i.label, i.key))
    return assembled


def check_trainable(assembled: Assembled, min_images: int) -> None:
    """Refuse what cannot make a classifier, with a sentence that says what to do."""
    where = "the catalog" if assembled.source == "catalog" else assembled.source.removeprefix("folder:")
    labels = assembled.labels
    dropped = ", ".join(f"{name} ({count})" for name, count in assembled.dropped_classes.items())
    tail = f"; left out for having fewer than {min_images} images: {dropped}" if dropped else ""
    if not labels:
        raise TrainingError(f"no labelled images to train on in {where}{tail}")
    if len(labels) == 1:
        raise TrainingError(
            f"only one class ({labels[0]!r}) has enough images in {where}; a classifier needs at least 2{tail}"
        )


# --- torch datasets ------------------------------------------------------------------------------


class PixelLoader:
    """Prepared uint8 HxWx3 pixels of an item: from memory, or read and decoded from the store."""

    def __init__(self, settings: Settings, image_size: int) -> None:
        self.store = ImageStore.from_settings(settings)
        self.limits = settings.images
        self.image_size = image_size

    def __call__(self, item: Item) -> np.ndarray:
        if item.pixels is not None:
            if item.pixels.shape[0] != self.image_size:
                return prepare(item.pixels, self.image_size)
            return item.pixels
        assert item.store_sha256 is not None
        try:
            decoded = decode_image(self.store.read(item.store_sha256), self.limits)
        except (OSError, ImageRejected) as exc:
            raise TrainingError(f"image {item.store_sha256[:12]} in the store is unreadable: {exc}") from exc
        return prepare(decoded.rgb, self.image_size)


@contextmanager
def _one_thread() -> Iterator[None]:
    """One image's augmentation ops are far too small to gain from intra-op threads, and on a busy
    machine waiting for the second OpenMP thread at each of them made augmentation 2 to 50 times
    slower (64 px, 2 cores: 0.6 ms an image on one thread, 1.2 to 34 ms on two). The batch's
    forward and backward pass gets every thread back."""
    threads = torch.get_num_threads()
    if threads == 1:  # already so in DataLoader workers
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class ItemDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        items: list[Item],
        class_index: dict[str, int],
        loader: Callable[[Item], np.ndarray],
        transform: Callable[[torch.Tensor], torch.Tensor] | None,
    ) -> None:
        self.items = items
        self.class_index = class_index
        self.loader = loader
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        item = self.items[index]
        with _one_thread():
            pixels = to_chw(self.loader(item))
            image = self.transform(pixels) if self.transform is not None else pixels
        return image, self.class_index[item.label]

    def targets(self) -> list[int]:
        return [self.class_index[item.label] for item in self.items]


def prepared_batches(
    items: list[Item], loader: Callable[[Item], np.ndarray], batch_size: int
) -> Iterator[np.ndarray]:
    """Evaluation input: NHWC uint8 batches straight from `prepare`, the exported graph's input."""
    for start in range(0, len(items), batch_size):
        yield np.stack([loader(item) for item in items[start : start + batch_size]])

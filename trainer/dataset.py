"""The labelled set: from the catalog (face crops, or whole images where no face was found, with
their resolved label) or from a folder per character. Then class filtering and the per-class cap.

Resolved label: the most trusted origin wins (moderator > vote, which the bot writes once a quorum
agrees > folder > subreddit > title mention > comment link); on a tie, a label on the face beats a
label on its image, then the higher weight, then the newer one. A resolved "not a character"
(character_id None) leaves the item out. A face flagged `needs_review` (several faces in one image)
only counts with a label of its own.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.schema import Character, Face, Image, ImageStatus, Label, LabelOrigin, Provenance
from catalog.settings import Settings
from catalog.store import ImageStore
from media.decode import DecodeLimits, ImageRejected, decode_image
from models.preprocess import prepare
from trainer import TrainingError
from trainer.augment import to_chw
from trainer.progress import Display, counter

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".avif"}
ORIGIN_RANK = {origin: rank for rank, origin in enumerate(LabelOrigin)}


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


@dataclass
class Assembled:
    items: list[Item]
    source: str  # "catalog" or "folder:<path>"
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> count
    dropped_classes: dict[str, int] = field(default_factory=dict)  # class -> images it had
    capped_classes: dict[str, int] = field(default_factory=dict)  # class -> images before the cap
    warnings: list[str] = field(default_factory=list)
    declared: set[str] = field(default_factory=set)  # every class the source names, even empty ones

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


# --- from a folder -------------------------------------------------------------------------------


def _phash(rgb: np.ndarray) -> int:
    from media.hashes import perceptual_hashes

    return perceptual_hashes(rgb)[0]


class _FaceCropper:
    """Detect faces and crop them the way the bot does (the same finder, cut at the model's input
    size), so that folder training sees the pixels the bot will show the model."""

    def __init__(self, settings: Settings) -> None:
        from catalog.finder_store import finder_folder
        from media.faces import face_finder

        self.detector = face_finder(settings, finder_folder(settings))

    def crops(self, rgb: np.ndarray, size: int) -> list[np.ndarray]:
        return [self.detector.crop(rgb, box, size) for box in self.detector.detect(rgb)]


def _cropper(settings: Settings, assembled: Assembled) -> _FaceCropper | None:
    try:
        return _FaceCropper(settings)
    except CatalogError as exc:
        message = f"no face detector ({exc}); training on whole images"
        log.warning(message)
        assembled.warnings.append(message)
        return None


def _manifest_hints(root: Path) -> tuple[dict[Path, str], set[str]]:
    """A `manifest.json` beside the class folders (the synthetic dataset writes one) may name
    extra images of a character (near-duplicates, kept to test leak-free splits) and folders that
    are not characters (multi-character scenes). Returns (extra image -> class, folders to skip)."""
    path = root / "manifest.json"
    if not path.is_file():
        return {}, set()
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        extra = {root / e["path"]: str(e["character"]) for e in document.get("near_duplicates", [])}
        skip = {
            Path(e["path"]).parts[0]
            for e in [*document.get("scenes", []), *document.get("near_duplicates", [])]
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        log.warning("ignoring %s: %s", path, exc)
        return {}, set()
    return extra, skip


def from_folder(
    root: Path,
    settings: Settings,
    image_size: int,
    *,
    detect_faces: bool = True,
    progress: Display | None = None,
) -> Assembled:
    """`root/<character>/*.jpg`: one class per sub-folder, named after it. Files that fail
    `decode_image` are skipped with their reason logged and counted. Reading and cropping a few
    thousand pictures takes minutes: `progress` shows it."""
    if not root.is_dir():
        raise TrainingError(f"--from-folder {root}: not a folder")
    extra, skip = _manifest_hints(root)
    class_dirs = sorted(
        p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and p.name not in skip
    )
    if not class_dirs:
        raise TrainingError(f"--from-folder {root}: no sub-folders (expected one folder per character)")
    assembled = Assembled(items=[], source=f"folder:{root.resolve()}")
    cropper = _cropper(settings, assembled) if detect_faces else None
    unknown = sorted({label for label in extra.values()} - {p.name for p in class_dirs})
    if unknown:
        log.warning("manifest names images of characters without a folder, ignored: %s", ", ".join(unknown))
    assembled.declared = {p.name for p in class_dirs}
    work: list[tuple[Path, Path]] = []
    for class_dir in class_dirs:
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            assembled.warnings.append(f"class {class_dir.name!r}: the folder has no image files")
        files += sorted(p for p, label in extra.items() if label == class_dir.name and p.is_file())
        work.extend((class_dir, path) for path in files)
    step = counter(progress, f"reading and cropping {len(work)} pictures", len(work))
    limits = DecodeLimits(settings.images)
    for class_dir, path in work:
        step("")
        try:
            data = limits.read_file(path)
            decoded = decode_image(data, settings.images)
        except ImageRejected as exc:
            log.warning("skipping %s: %s (%s)", path, exc.detail, exc.reason)
            assembled.skipped[f"rejected:{exc.reason}"] += 1
            continue
        except OSError as exc:
            log.warning("skipping %s: unreadable (%s)", path, exc.strerror or exc)
            assembled.skipped["unreadable"] += 1
            continue
        image_sha = hashlib.sha256(data).hexdigest()
        phash = _phash(decoded.rgb)
        mirror_phash = _phash(decoded.rgb[:, ::-1])
        crops = cropper.crops(decoded.rgb, image_size) if cropper else []
        if len(crops) > 1:
            # Which face is the character is unknown; the catalog sends these to review.
            assembled.skipped["several_faces"] += 1
            continue
        pixels = crops[0] if crops else decoded.rgb
        crop_phash = _phash(pixels) if crops else None
        key = hashlib.sha256(pixels.tobytes()).hexdigest() if crops else image_sha
        assembled.items.append(
            Item(
                key=key,
                image_sha256=image_sha,
                label=class_dir.name,
                links=frozenset(),
                phash=phash,
                crop_phash=crop_phash,
                mirror_phash=mirror_phash,
                pixels=prepare(pixels, image_size),
                origin="folder",
            )
        )
    _drop_exact_duplicates(assembled)
    return assembled


def _drop_exact_duplicates(assembled: Assembled) -> None:
    """The same file twice: once is enough; in two characters' folders, neither label is trusted."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for item in assembled.items:
        labels_of[item.image_sha256].add(item.label)
    kept, seen = [], set()
    for item in assembled.items:
        if len(labels_of[item.image_sha256]) > 1:
            assembled.skipped["conflicting_labels"] += 1
            continue
        if (item.image_sha256, item.key) in seen:
            assembled.skipped["exact_duplicate"] += 1
            continue
        seen.add((item.image_sha256, item.key))
        kept.append(item)
    conflicts = sorted(sha[:12] for sha, labels in labels_of.items() if len(labels) > 1)
    if conflicts:
        message = f"{len(conflicts)} image(s) sit in more than one character's folder and were left out"
        log.warning("%s: %s", message, ", ".join(conflicts[:10]))
        assembled.warnings.append(message)
    assembled.items = kept


# --- from the catalog ----------------------------------------------------------------------------


@dataclass
class _Claim:
    origin: LabelOrigin
    on_face: bool
    weight: float
    created: Any
    character_id: int | None

    def rank(self) -> tuple:
        return (ORIGIN_RANK[LabelOrigin(self.origin)], self.on_face, self.weight, str(self.created))


def resolve(claims: list[_Claim]) -> _Claim | None:
    return max(claims, key=_Claim.rank) if claims else None


def from_catalog(engine: Engine, settings: Settings, *, progress: Display | None = None) -> Assembled:
    """Every stored image with a resolved character label: its face crops, or the whole image
    when no face was found. `progress` shows the pass over the images (it reads each face crop)."""
    store = ImageStore.from_settings(settings)
    present = set(store.names())  # one listing, not a request per image
    assembled = Assembled(items=[], source="catalog")
    with session_scope(engine) as session:
        names = {
            cid: name
            for cid, name in session.execute(
                select(Character.id, Character.name).where(Character.active.is_(True))
            )
        }
        image_claims: dict[int, list[_Claim]] = defaultdict(list)
        face_claims: dict[int, list[_Claim]] = defaultdict(list)
        for row in session.execute(
            select(
                Label.image_id,
                Label.face_id,
                Label.character_id,
                Label.origin,
                Label.weight,
                Label.created_at,
            )
        ):
            if row.face_id is not None:
                face_claims[row.face_id].append(
                    _Claim(row.origin, True, row.weight, row.created_at, row.character_id)
                )
            elif row.image_id is not None:
                image_claims[row.image_id].append(
                    _Claim(row.origin, False, row.weight, row.created_at, row.character_id)
                )
        posts: dict[int, set[str]] = defaultdict(set)
        for image_id, post_id in session.execute(
            select(Provenance.image_id, Provenance.post_id).where(Provenance.post_id.is_not(None))
        ):
            posts[image_id].add(f"post:{post_id}")
        images = session.execute(
            select(
                Image.id,
                Image.sha256,
                Image.phash,
                Image.status,
                Image.duplicate_of_id,
                Image.stored,
                Image.has_face,
            )
        ).all()
        faces: dict[int, list[Any]] = defaultdict(list)
        for face in session.execute(
            select(Face.id, Face.image_id, Face.index, Face.crop_sha256, Face.needs_review).order_by(
                Face.index
            )
        ):
            faces[face.image_id].append(face)

    assembled.declared = set(names.values())
    # A duplicate's posts and id belong to the picture it duplicates: reposts of one picture
    # in several posts must all be on one side.
    links: dict[int, set[str]] = defaultdict(set)
    for image in images:
        links[image.id] |= {f"img:{image.id}", *posts.get(image.id, ())}
        if image.duplicate_of_id is not None:
            links[image.id].add(f"img:{image.duplicate_of_id}")
            links[image.duplicate_of_id] |= {f"img:{image.id}", *posts.get(image.id, ())}

    step = counter(progress, f"reading {len(images)} catalog images", len(images))
    for image in images:
        step("")
        if not image.stored or image.status not in (ImageStatus.accepted, ImageStatus.review):
            continue
        claims = image_claims.get(image.id, [])
        targets: list[tuple[str, list[_Claim]]] = []
        image_faces = faces.get(image.id, [])
        if image_faces:
            for face in image_faces:
                own = face_claims.get(face.id, [])
                if face.needs_review and not own:
                    assembled.skipped["face_needs_review"] += 1
                    continue
                targets.append((face.crop_sha256, own + claims))
        else:
            targets.append((image.sha256, claims))
        for pixels_sha, target_claims in targets:
            best = resolve(target_claims)
            if best is None:
                assembled.skipped["unlabelled"] += 1
                continue
            if image.status == ImageStatus.review and best.origin != LabelOrigin.moderator:
                assembled.skipped["in_review"] += 1
                continue
            if best.character_id is None:
                assembled.skipped["not_a_character"] += 1
                continue
            if best.character_id not in names:
                assembled.skipped["inactive_character"] += 1
                continue
            if pixels_sha not in present:
                assembled.skipped["missing_in_store"] += 1
                continue
            crop_phash = _stored_phash(store, pixels_sha, settings) if pixels_sha != image.sha256 else None
            assembled.items.append(
                Item(
                    key=pixels_sha,
                    image_sha256=image.sha256,
                    label=names[best.character_id],
                    links=frozenset(links[image.id]),
                    phash=int(image.phash, 16) if image.phash else None,
                    crop_phash=crop_phash,
                    store_sha256=pixels_sha,
                    origin=str(best.origin),
                )
            )
    return assembled


def _stored_phash(store: ImageStore, sha256: str, settings: Settings) -> int | None:
    try:
        return _phash(decode_image(store.read(sha256), settings.images).rgb)
    except (OSError, ImageRejected) as exc:
        log.warning("face crop %s in the store is unreadable (%s)", sha256[:12], exc)
        return None


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

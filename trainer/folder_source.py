"""The labelled set from a folder per character (`root/<character>/*.jpg`): faces detected and
cropped the way the bot does, a `manifest.json`'s hints, and exact duplicates dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from catalog.errors import CatalogError
from catalog.settings import Settings
from media.boxes import Box
from media.decode import DecodeLimits, ImageRejected, decode_image
from models.preprocess import prepare
from trainer import TrainingError
from trainer.dataset import Assembled, Item, _phash
from trainer.group_faces import GroupFacePicker, group_face_picker
from trainer.progress import Display, counter

if TYPE_CHECKING:
    from media.faces import FaceFinder

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".avif"}


def _finder(settings: Settings, assembled: Assembled) -> FaceFinder | None:
    """The finder the bot uses, so that folder training cuts faces as the bot will show them to
    the model (at the model's input size); None, with a warning, when there is none."""
    from catalog.finder_store import finder_folder
    from media.faces import face_finder

    try:
        return face_finder(settings, finder_folder(settings))
    except CatalogError as exc:
        message = f"no face detector ({exc}); training on whole images"
        log.warning(message)
        assembled.warnings.append(message)
        return None


def _one_face(
    rgb: np.ndarray, label: str, finder: FaceFinder, picker: GroupFacePicker | None
) -> tuple[Box | None, bool] | None:
    """The picture's face (None: no face found) and whether a model chose it among several; None
    when there are several and no model names exactly one of them as `label`."""
    boxes = finder.detect(rgb)
    if len(boxes) <= 1:
        return (boxes[0] if boxes else None), False
    box = picker.pick(rgb, label) if picker is not None else None
    return None if box is None else (box, True)


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
    finder = _finder(settings, assembled) if detect_faces else None
    picker = group_face_picker(settings, finder) if finder is not None else None
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
        box, picked = None, False
        if finder is not None:
            found = _one_face(decoded.rgb, class_dir.name, finder, picker)
            if found is None:
                # Which face is the character is unknown; the catalog sends these to review.
                assembled.skipped["several_faces"] += 1
                continue
            box, picked = found
        if picked and picker is not None:
            assembled.picked[picker.version] += 1
        pixels = decoded.rgb if finder is None or box is None else finder.crop(decoded.rgb, box, image_size)
        crop_phash = None if box is None else _phash(pixels)
        key = image_sha if box is None else hashlib.sha256(pixels.tobytes()).hexdigest()
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
                train_only=picked,
            )
        )
    _drop_exact_duplicates(assembled)
    return assembled


def _drop_exact_duplicates(assembled: Assembled) -> None:
    """The same file twice: once is enough; the same pixels in two characters' folders (the whole
    picture, or its one face): neither label is trusted. A group picture in two folders, each with a
    different face chosen (`trainer.group_faces`), is two faces, one in each."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    for item in assembled.items:
        labels_of[item.key].add(item.label)
    kept, seen = [], set()
    for item in assembled.items:
        if len(labels_of[item.key]) > 1:
            assembled.skipped["conflicting_labels"] += 1
            continue
        if (item.image_sha256, item.key) in seen:
            assembled.skipped["exact_duplicate"] += 1
            continue
        seen.add((item.image_sha256, item.key))
        kept.append(item)
    conflicts = sorted({item.image_sha256[:12] for item in assembled.items if len(labels_of[item.key]) > 1})
    if conflicts:
        message = f"{len(conflicts)} image(s) sit in more than one character's folder and were left out"
        log.warning("%s: %s", message, ", ".join(conflicts[:10]))
        assembled.warnings.append(message)
    assembled.items = kept

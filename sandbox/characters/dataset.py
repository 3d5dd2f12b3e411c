"""Writing a synthetic dataset to disk: a folder per character, scenes, near-duplicates, a manifest.

Every image draws from its own random stream, seeded by (seed, kind, indices), so the output is
byte-identical for the same arguments and one image does not depend on how many came before it.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from sandbox.characters.augment import NEAR_DUPLICATE_KINDS, encode_jpeg, near_duplicate
from sandbox.characters.render import render_character, render_scene
from sandbox.characters.traits import CharacterSpec, make_characters

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SCENE_SIZE = (384, 256)
SCENES_DIR = "scenes"
NEAR_DUPLICATES_DIR = "near_duplicates"
# Stream tags keep the random streams of portraits, scenes and near-duplicates apart.
_PORTRAIT, _SCENE, _NEAR_DUPLICATE = 1, 2, 3


def split_hint(index: int) -> str:
    """A suggested split for a character's index-th image: 80% train, 10% val, 10% test."""
    return {8: "val", 9: "test"}.get(index % 10, "train")


@dataclass
class SynthManifest:
    """What generate_dataset wrote. Paths are relative to `root` (posix style)."""

    characters: list[CharacterSpec]
    images: list[dict[str, Any]]  # path, character (slug), box (x, y, w, h), split
    scenes: list[dict[str, Any]]  # path, faces: [(slug, (x, y, w, h)), ...]
    near_duplicates: list[dict[str, Any]]  # path, original (path), kind, character (slug)
    root: Path = field(default_factory=Path)
    seed: int = 0
    size: int = 256

    def path(self, relative: str) -> Path:
        return self.root / relative

    def images_of(self, slug: str) -> list[dict[str, Any]]:
        return [entry for entry in self.images if entry["character"] == slug]

    def character(self, slug: str) -> CharacterSpec:
        for spec in self.characters:
            if spec.slug == slug:
                return spec
        raise KeyError(f"no synthetic character with slug {slug!r}")

    def to_json(self) -> str:
        # No timestamps or absolute paths: the same seed must give the same bytes in any folder.
        document = {
            "format": MANIFEST_FORMAT,
            "seed": self.seed,
            "size": self.size,
            "characters": [asdict(spec) for spec in self.characters],
            "images": self.images,
            "scenes": self.scenes,
            "near_duplicates": self.near_duplicates,
        }
        return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @classmethod
    def load(cls, root: Path) -> SynthManifest:
        """Read `root/manifest.json` back (tuples where generate_dataset returned tuples)."""
        path = Path(root) / MANIFEST_NAME
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} does not exist: not a synthetic dataset folder") from None
        if document.get("format") != MANIFEST_FORMAT:
            raise ValueError(f"{path}: unsupported manifest format {document.get('format')!r}")
        images = [{**entry, "box": tuple(entry["box"])} for entry in document["images"]]
        scenes = [
            {**entry, "faces": [(slug, tuple(box)) for slug, box in entry["faces"]]}
            for entry in document["scenes"]
        ]
        return cls(
            characters=[CharacterSpec(**spec) for spec in document["characters"]],
            images=images,
            scenes=scenes,
            near_duplicates=document["near_duplicates"],
            root=Path(root),
            seed=document["seed"],
            size=document["size"],
        )


@contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Any]:
    if not enabled:
        yield lambda: None
        return
    from rich.progress import Progress  # only when asked: keeps library imports light

    with Progress(transient=True) as bar:
        task = bar.add_task("drawing synthetic characters", total=total)
        yield lambda: bar.advance(task)


def _check_arguments(
    out: Path, characters: int, images: int, scenes: int, near_duplicates: int, size: int
) -> None:
    if characters < 1:
        raise ValueError(f"characters must be at least 1, got {characters}")
    for name, value in (("images", images), ("scenes", scenes), ("near_duplicates", near_duplicates)):
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value}")
    if images > 9999 or scenes > 9999 or near_duplicates > 9999:
        raise ValueError("at most 9999 images, scenes and near-duplicates each")
    if size < 32:
        raise ValueError(f"size must be at least 32 pixels, got {size}")
    if near_duplicates and not images:
        raise ValueError("near-duplicates are copies of portraits: images must be at least 1")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        # Never write over someone's files: a dataset goes into a new or empty folder.
        raise FileExistsError(f"{out} exists and is not an empty folder")


def generate_dataset(
    out: Path,
    *,
    characters: int,
    images: int,
    seed: int,
    scenes: int = 0,
    near_duplicates: int = 0,
    size: int = 256,
    progress: bool = False,
) -> SynthManifest:
    """Draw `characters` x `images` portraits into out/<slug>/<nnnn>.jpg (the Kaggle Simpsons layout),
    `scenes` multi-face scenes into out/scenes/, `near_duplicates` edited copies of portraits into
    out/near_duplicates/, and out/manifest.json. The same arguments give byte-identical files."""
    out = Path(out)
    _check_arguments(out, characters, images, scenes, near_duplicates, size)
    specs = make_characters(characters, seed)
    manifest = SynthManifest(
        characters=specs, images=[], scenes=[], near_duplicates=[], root=out, seed=seed, size=size
    )
    out.mkdir(parents=True, exist_ok=True)
    total = characters * images + scenes + near_duplicates
    with _progress(progress, total) as advance:
        for ci, spec in enumerate(specs):
            folder = out / spec.slug
            folder.mkdir()
            for j in range(images):
                rng = np.random.default_rng([seed, _PORTRAIT, ci, j])
                image, box = render_character(spec, rng, size)
                relative = f"{spec.slug}/{j:04d}.jpg"
                (out / relative).write_bytes(encode_jpeg(image, rng))
                manifest.images.append(
                    {"path": relative, "character": spec.slug, "box": box, "split": split_hint(j)}
                )
                advance()
        if scenes:
            (out / SCENES_DIR).mkdir()
        for k in range(scenes):
            rng = np.random.default_rng([seed, _SCENE, k])
            count = min(len(specs), 3 if k % 3 == 2 else 2)  # mostly pairs, every third a trio
            chosen = [specs[int(i)] for i in rng.choice(len(specs), size=count, replace=False)]
            image, faces = render_scene(chosen, rng, SCENE_SIZE)
            relative = f"{SCENES_DIR}/{k:04d}.jpg"
            (out / relative).write_bytes(encode_jpeg(image, rng))
            manifest.scenes.append({"path": relative, "faces": faces})
            advance()
        if near_duplicates:
            (out / NEAR_DUPLICATES_DIR).mkdir()
            picker = np.random.default_rng([seed, _NEAR_DUPLICATE])
            order = picker.permutation(len(manifest.images))
        for k in range(near_duplicates):
            original = manifest.images[int(order[k % len(order)])]
            kind = NEAR_DUPLICATE_KINDS[k % len(NEAR_DUPLICATE_KINDS)]
            rng = np.random.default_rng([seed, _NEAR_DUPLICATE, k])
            # Edit the decoded JPEG, as a re-poster would: the copy starts from the published file.
            with Image.open(io.BytesIO((out / original["path"]).read_bytes())) as published:
                copy = near_duplicate(published, rng, kind)
            relative = f"{NEAR_DUPLICATES_DIR}/{k:04d}.jpg"
            (out / relative).write_bytes(encode_jpeg(copy, rng))
            manifest.near_duplicates.append(
                {
                    "path": relative,
                    "original": original["path"],
                    "kind": kind,
                    "character": original["character"],
                }
            )
            advance()
    (out / MANIFEST_NAME).write_text(manifest.to_json(), encoding="utf-8")
    log.info("wrote %d portraits, %d scenes, %d near-duplicates to %s", len(manifest.images), scenes,
             near_duplicates, out)  # fmt: skip
    return manifest

"""Training pictures for the face finder, with face boxes in the cascade's convention.

Three sources, mixed (`trainer.face_inputs.stream`):
- pictures with hand-drawn boxes in Pascal VOC folders (`Annotations/*.xml` + the pictures), e.g.
  the MIT-licensed paperface set; head boxes (hair included) are converted to face boxes by the
  relation measured between that set's boxes and the cascade's (`head_to_face`);
- real face crops pasted onto backgrounds at known boxes (`trainer.face_paste`); backgrounds are
  photos shipped inside installed packages, regions of the VOC pictures away from every head (both
  read here), and synthetic backdrops;
- synthetic scenes whose face boxes are known (`Synthetic`: `namae` hands in `sandbox.characters`'
  drawn characters; the trainer does not import the sandbox).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from trainer import TrainingError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}
FloatBox = tuple[float, float, float, float]  # x, y, w, h

# Measured on the paperface set (524 hand-drawn head boxes against the cascade's matched boxes,
# medians): a head box is 1.15x wider and 1.21x taller than the face box, centred 0.24 face
# heights higher.
HEAD_WIDTH, HEAD_HEIGHT, HEAD_RAISE = 1.15, 1.21, 0.24


def head_to_face(box: FloatBox) -> FloatBox:
    x, y, w, h = box
    fw, fh = w / HEAD_WIDTH, h / HEAD_HEIGHT
    cx, cy = x + w / 2, y + h / 2 + HEAD_RAISE * fh
    return (cx - fw / 2, cy - fh / 2, fw, fh)


@dataclass(frozen=True)
class Picture:
    rgb: np.ndarray
    faces: list[FloatBox]


class Synthetic(Protocol):
    """Drawn scenes with known face boxes, and drawn backdrops (`namae.face_scenes.SandboxScenes`)."""

    def scene(self, rng: np.random.Generator) -> Picture: ...

    def backdrop(self, width: int, height: int, rng: np.random.Generator) -> np.ndarray: ...


def read_rgb(path: Path) -> np.ndarray | None:
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def voc_folder(root: Path, *, heads: bool) -> list[tuple[Path, list[FloatBox]]]:
    """(picture, face boxes) for every `Annotations/*.xml` whose picture is present. A folder with a
    `train_list.txt` (lines "<picture> <annotation>") gives only the pictures it lists: the others
    (val/test lists) stay unseen, for `bench/faces.py`."""
    annotations = sorted((root / "Annotations").glob("*.xml"))
    if not annotations:
        raise TrainingError(f"--boxes {root}: no Annotations/*.xml (expected a Pascal VOC folder)")
    listed = root / "train_list.txt"
    if listed.is_file():
        names = {
            Path(line.replace("\\", "/").split()[-1]).stem
            for line in listed.read_text().splitlines()
            if line.strip()
        }
        annotations = [a for a in annotations if a.stem in names]
    pictures = {p.stem: p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES}
    out = []
    for xml in annotations:
        try:
            tree = ET.parse(xml).getroot()
        except ET.ParseError as exc:
            raise TrainingError(f"--boxes {root}: {xml.name} is not valid XML ({exc})") from exc
        name = tree.findtext("filename") or xml.stem
        picture = pictures.get(Path(name).stem) or pictures.get(xml.stem)
        if picture is None:
            continue
        boxes = []
        for obj in tree.iter("object"):
            b = obj.find("bndbox")
            if b is None:
                continue
            x0, y0, x1, y1 = (float(b.findtext(k) or 0) for k in ("xmin", "ymin", "xmax", "ymax"))
            if x1 > x0 and y1 > y0:
                box = (x0, y0, x1 - x0, y1 - y0)
                boxes.append(head_to_face(box) if heads else box)
        out.append((picture, boxes))
    return out


def crop_files(root: Path) -> list[Path]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise TrainingError(f"--crops {root}: no pictures found")
    return files


def package_photos() -> list[np.ndarray]:
    """Non-anime photos that ship inside installed packages (scikit-learn, matplotlib, scikit-image)."""
    import importlib.util

    found = []
    for package, sub in (
        ("sklearn", "datasets/images"),
        ("matplotlib", "mpl-data/sample_data"),
        ("skimage", "data"),
    ):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations))) / sub
        for path in sorted(folder.glob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES:
                rgb = read_rgb(path)
                if rgb is not None and min(rgb.shape[:2]) >= 128:
                    found.append(rgb)
    return found


def regions_away_from_faces(
    pictures: list[tuple[Path, list[FloatBox]]], rng: np.random.Generator, per_picture: int = 3
) -> list[np.ndarray]:
    """Crops of the boxed pictures clear of every face (grown to cover hair): anime-style negatives."""
    out = []
    for path, boxes in pictures:
        rgb = read_rgb(path)
        if rgb is None:
            continue
        h, w = rgb.shape[:2]
        scale = min(1.0, 512 / max(h, w))
        if scale < 1:
            rgb = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
            h, w = rgb.shape[:2]
        grown = [
            (x * scale - bw * scale * 0.5, y * scale - bh * scale * 0.8, bw * scale * 2, bh * scale * 2.2)
            for x, y, bw, bh in boxes
        ]
        got = 0
        for _ in range(60):
            cw, ch = int(rng.uniform(0.25, 0.7) * w), int(rng.uniform(0.25, 0.7) * h)
            if min(cw, ch) < 64:
                continue
            x0, y0 = int(rng.integers(0, max(1, w - cw))), int(rng.integers(0, max(1, h - ch)))
            if any(
                x0 < gx + gw and gx < x0 + cw and y0 < gy + gh and gy < y0 + ch for gx, gy, gw, gh in grown
            ):
                continue
            out.append(np.ascontiguousarray(rgb[y0 : y0 + ch, x0 : x0 + cw]))
            got += 1
            if got >= per_picture:
                break
    return out

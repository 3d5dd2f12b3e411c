"""The greyscale (manga page) detector, measured on coloured synthetic pictures and planted greyscale pages.

Coloured: sandbox character portraits (varied backgrounds and lighting), the same portraits washed out
to pastel, darkened, and shrunk onto a white page, plus smooth colour fields. Greyscale: the portraits
turned grey, and manga-like pages (panels, screentone, hatching, speech bubbles, text lines, greyscale
portraits) on white or yellowed paper, some JPEG-compressed (chroma noise) or with scanner noise, and
sepia-toned portraits. The positive class is "greyscale".
"""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from catalog.settings import ImageLimits
from media.decode import ImageRejected, decode_image
from media.encode import encode_png
from media.greyscale import is_greyscale, saturation_score
from sandbox.characters.render import render_character
from sandbox.characters.traits import make_characters
from tests.hostile_files import pattern

THRESHOLD = ImageLimits().greyscale_saturation
MIN_PRECISION = 0.95
MIN_RECALL = 0.95
PORTRAITS = 16
PAGES = 24


def _portraits() -> list[np.ndarray]:
    specs = make_characters(8, seed=7)
    rng = np.random.default_rng(7)
    return [np.asarray(render_character(specs[i % 8], rng, 192)[0].convert("RGB")) for i in range(PORTRAITS)]


def _grey(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L").convert("RGB"))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, "JPEG", quality=quality)
    return np.asarray(Image.open(buffer).convert("RGB"))


def _manga_page(rng: np.random.Generator, portraits: list[np.ndarray]) -> np.ndarray:
    width, height = 360, 512
    page = Image.new("L", (width, height), 255)
    draw = ImageDraw.Draw(page)
    rows = int(rng.integers(2, 4))
    panel_h = (height - 20) // rows
    for row in range(rows):
        top = 10 + row * panel_h
        split = int(rng.integers(120, 240))
        for left, right in ((10, split - 4), (split + 4, width - 10)):
            box = (left, top, right, top + panel_h - 8)
            kind = int(rng.integers(4))
            if kind == 0:  # screentone: a grid of grey dots
                step = int(rng.integers(4, 8))
                for y in range(box[1], box[3], step):
                    for x in range(box[0], box[2], step):
                        draw.ellipse((x, y, x + step // 2, y + step // 2), fill=int(rng.integers(60, 160)))
            elif kind == 1:  # hatching
                for x in range(box[0] - panel_h, box[2], int(rng.integers(5, 10))):
                    draw.line((x, box[3], x + panel_h, box[1]), fill=int(rng.integers(0, 90)), width=1)
            elif kind == 2:  # a greyscale character
                face = Image.fromarray(portraits[int(rng.integers(len(portraits)))]).convert("L")
                page.paste(face.resize((box[2] - box[0], box[3] - box[1])), box[:2])
            draw.rectangle(box, outline=0, width=3)
            if rng.random() < 0.6:  # speech bubble with lines of text
                cx, cy = (
                    int(rng.integers(box[0] + 30, box[2] - 29)),
                    int(rng.integers(box[1] + 25, box[3] - 24)),
                )
                draw.ellipse((cx - 30, cy - 22, cx + 30, cy + 22), fill=255, outline=0, width=2)
                for line in range(3):
                    draw.rectangle(
                        (cx - 18, cy - 12 + line * 9, cx + 18 - 6 * line, cy - 8 + line * 9), fill=20
                    )
    grey = np.asarray(page, dtype=np.float32)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _coloured_set(portraits: list[np.ndarray]) -> dict[str, np.ndarray]:
    images: dict[str, np.ndarray] = {}
    for i, rgb in enumerate(portraits):
        images[f"portrait_{i}"] = rgb
        if i % 2 == 0:
            images[f"pastel_{i}"] = (rgb * 0.45 + 255 * 0.55).astype(np.uint8)
        else:
            images[f"dark_{i}"] = (rgb * 0.35).astype(np.uint8)
        if i % 4 == 0:  # a small coloured character on a large white page
            page = np.full((480, 480, 3), 255, np.uint8)
            small = np.asarray(Image.fromarray(rgb).resize((140, 140)))
            page[40:180, 300:440] = small
            images[f"small_on_white_{i}"] = page
            images[f"jpeg_q60_{i}"] = _jpeg(rgb, 60)
    for seed in range(6):
        images[f"colour_field_{seed}"] = pattern(160, 200, seed=100 + seed)
    return images


def _greyscale_set(portraits: list[np.ndarray]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(11)
    images: dict[str, np.ndarray] = {}
    for i, rgb in enumerate(portraits):
        if i % 2 == 0:
            images[f"grey_portrait_{i}"] = _grey(rgb)
        else:
            sepia = _grey(rgb).astype(np.float32) * np.array([1.0, 0.88, 0.7])
            images[f"sepia_portrait_{i}"] = sepia.astype(np.uint8)
    for i in range(PAGES):
        page = _manga_page(rng, portraits)
        variant = i % 4
        if variant == 1:  # yellowed paper: a multiplicative tint
            page = page * np.array([1.0, 0.95, 0.84])
        elif variant == 2:  # scanner noise, independent per channel
            page = page * np.array([0.98, 0.96, 0.9]) + rng.normal(0, 4, size=page.shape)
        page_u8 = np.clip(page, 0, 255).astype(np.uint8)
        if variant == 3:
            page_u8 = _jpeg(page_u8, 70)
        images[f"manga_page_{i}_v{variant}"] = page_u8
    return images


@pytest.fixture(scope="module")
def evaluation() -> dict[str, dict[str, float]]:
    portraits = _portraits()
    return {
        "coloured": {name: saturation_score(rgb) for name, rgb in _coloured_set(portraits).items()},
        "greyscale": {name: saturation_score(rgb) for name, rgb in _greyscale_set(portraits).items()},
    }


def test_greyscale_detector_precision_and_recall(evaluation: dict[str, dict[str, float]]) -> None:
    coloured, greyscale = evaluation["coloured"], evaluation["greyscale"]
    true_pos = sum(score < THRESHOLD for score in greyscale.values())
    false_pos = [name for name, score in coloured.items() if score < THRESHOLD]
    missed = [name for name, score in greyscale.items() if score >= THRESHOLD]
    precision = true_pos / max(1, true_pos + len(false_pos))
    recall = true_pos / len(greyscale)
    summary = {
        "threshold": THRESHOLD,
        "coloured": len(coloured),
        "greyscale": len(greyscale),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "false_positives": false_pos,
        "missed": missed,
        "max_greyscale_score": round(max(greyscale.values()), 4),
        "min_coloured_score": round(min(coloured.values()), 4),
    }
    print("greyscale detector:", json.dumps(summary))
    assert precision >= MIN_PRECISION, summary
    assert recall >= MIN_RECALL, summary


def test_reject_greyscale_setting_turns_detection_into_a_rejection() -> None:
    page = _manga_page(np.random.default_rng(3), _portraits()[:2]).astype(np.uint8)
    data = encode_png(page)
    assert decode_image(data, ImageLimits()).rgb.shape == page.shape  # off by default
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, ImageLimits(reject_greyscale=True))
    assert caught.value.reason == "greyscale"
    colour = encode_png(pattern(128, 128, seed=4))
    assert decode_image(colour, ImageLimits(reject_greyscale=True)).format == "png"


def test_score_extremes() -> None:
    assert saturation_score(np.zeros((40, 40, 3), np.uint8)) == 0.0
    assert saturation_score(np.full((40, 40, 3), (255, 0, 0), np.uint8)) == pytest.approx(1.0)
    assert is_greyscale(np.full((40, 40, 3), 128, np.uint8), THRESHOLD)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        saturation_score(np.zeros((40, 40), np.uint8))

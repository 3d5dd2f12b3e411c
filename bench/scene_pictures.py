"""The pictures of `bench.scenes`: pasted scenes of face crops and collages of whole posts, with
where each character's face is; drawn from a deck so that every picture counts alike, and without
the posts a folder lists as showing several characters."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from media.encode import encode_jpeg
from trainer.face_data import FloatBox, read_rgb
from trainer.face_paste import pasted_scene

SEVERAL_CHARACTERS = "several_characters.txt"
JPEG_QUALITY = 90  # as a post is usually saved
FACES_PER_SCENE = ([2, 3, 4, 5], [0.3, 0.3, 0.25, 0.15])
SIZE_BANDS = (("small", 0.0, 0.1), ("medium", 0.1, 0.2), ("large", 0.2, 1.0))  # of the long side


@dataclass(frozen=True)
class Truth:
    """A character's face in a scene: pasted at `box`, or somewhere in a panel `box` (a collage)."""

    character: str
    box: FloatBox
    tags: tuple[str, ...] = ()  # what the figures are also broken down by (covered, small, ...)


@dataclass(frozen=True)
class Scene:
    jpeg: bytes
    faces: list[Truth]
    panels: bool = False  # a collage: a true face is anywhere in its box, not at it


def _size_band(size: float) -> str:
    return next(name for name, low, high in SIZE_BANDS if low <= size < high)


class _Deck:
    """Every picture of every character, dealt in a random order, each once per round (a new order
    each round), so that each picture is drawn about equally often whatever its character's share.
    Drawing a character first and then one of its pictures showed each post of a character with two
    as often as seven of another's: on the held-out JLaoo posts, one borderline post of a character
    with two was 8% of the collages' faces. Unreadable pictures leave the deck."""

    def __init__(self, by_character: dict[str, list[Path]], rng: np.random.Generator) -> None:
        self._rng = rng
        self._cards = [(c, p) for c in sorted(by_character) for p in by_character[c]]
        self._pile: list[tuple[str, Path]] = []
        self._unreadable: set[tuple[str, Path]] = set()

    def deal(self, k: int) -> list[tuple[str, np.ndarray]]:
        """k pictures of different characters (all of them when fewer are left; [] when none)."""
        hand: list[tuple[str, np.ndarray]] = []
        passed: list[tuple[str, Path]] = []  # a character already in the hand: dealt next time
        while len(hand) < min(k, len({c for c, _ in self._cards})):
            if not self._pile:
                self._pile = [self._cards[i] for i in self._rng.permutation(len(self._cards))]
            card = self._pile.pop()
            if card in self._unreadable:
                continue
            if any(card[0] == character for character, _ in hand):
                passed.append(card)
                continue
            picture = read_rgb(card[1])
            if picture is None:
                self._unreadable.add(card)
                self._cards.remove(card)
                continue
            hand.append((card[0], picture))
        self._pile.extend(reversed(passed))
        return hand


def _attempts(count: int) -> range:
    """Draws allowed for `count` pictures: unreadable files are skipped, not retried forever."""
    return range(20 * count)


def pasted_scenes(
    by_character: dict[str, list[Path]], count: int, seed: int, backgrounds: list[np.ndarray]
) -> list[Scene]:
    """`count` scenes of face crops of different characters (the module docstring)."""
    rng = np.random.default_rng(seed)
    deck = _Deck(by_character, rng)
    sizes, weights = FACES_PER_SCENE
    scenes: list[Scene] = []
    for _ in _attempts(count):
        if len(scenes) == count:
            break
        drawn = deck.deal(int(rng.choice(sizes, p=weights)))
        if not drawn:
            continue
        rgb, placed = pasted_scene(rng, [p for _, p in drawn], backgrounds, backgrounds)
        long_side = max(rgb.shape[:2])
        truths = [
            Truth(drawn[i][0], box, (_size_band(box[2] / long_side), "covered" if covered else "uncovered"))
            for i, box, covered in placed
        ]
        scenes.append(Scene(encode_jpeg(rgb, JPEG_QUALITY), truths))
    return scenes


def collages(by_character: dict[str, list[Path]], count: int, seed: int) -> list[Scene]:
    """`count` collages of whole posts of different characters: 2 or 3 side by side, or 4 in two
    rows, each scaled to the row's height (400-700 px), 8 px apart on white."""
    rng = np.random.default_rng(seed)
    deck = _Deck(by_character, rng)
    scenes: list[Scene] = []
    for _ in _attempts(count):
        if len(scenes) == count:
            break
        drawn = deck.deal(int(rng.choice([2, 3, 4], p=[0.4, 0.35, 0.25])))
        if not drawn:
            continue
        height, gap = int(rng.uniform(400, 700)), 8
        rows = [drawn] if len(drawn) < 4 else [drawn[:2], drawn[2:]]
        scaled = [
            [(c, cv2.resize(p, (max(1, round(p.shape[1] * height / p.shape[0])), height))) for c, p in row]
            for row in rows
        ]
        width = max(sum(p.shape[1] for _, p in row) + gap * (len(row) - 1) for row in scaled)
        canvas = np.full((height * len(rows) + gap * (len(rows) - 1), width, 3), 255, np.uint8)
        truths = []
        for r, row in enumerate(scaled):
            x, y = 0, r * (height + gap)
            for character, picture in row:
                canvas[y : y + height, x : x + picture.shape[1]] = picture
                truths.append(Truth(character, (x, y, picture.shape[1], height), (f"{len(drawn)}_posts",)))
                x += picture.shape[1] + gap
        scenes.append(Scene(encode_jpeg(canvas, JPEG_QUALITY), truths, panels=True))
    return scenes


def without_listed(folder: Path, by_character: dict[str, list[Path]]) -> tuple[dict[str, list[Path]], int]:
    """`by_character` without the posts `folder`'s `SEVERAL_CHARACTERS` lists, and how many it left out."""
    listing = folder / SEVERAL_CHARACTERS
    if not listing.is_file():
        return by_character, 0
    lines = (line.split("#", 1)[0].strip() for line in listing.read_text(encoding="utf-8").splitlines())
    listed = {line for line in lines if line}
    kept = {
        character: [
            p for p in paths if f"{character}/{p.relative_to(folder / character).as_posix()}" not in listed
        ]
        for character, paths in by_character.items()
    }
    return kept, sum(len(paths) for paths in by_character.values()) - sum(len(p) for p in kept.values())

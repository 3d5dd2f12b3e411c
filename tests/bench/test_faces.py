"""bench.faces on ordinary posts without boxes: the share of pictures where a finder finds no face."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from bench.faces import no_face_share, posts
from catalog.settings import FaceSettings
from media.faces import FaceDetector
from sandbox.characters.render import render_character
from sandbox.characters.traits import make_characters


def test_posts_count_each_character_and_the_pictures_where_the_cascade_finds_no_face(
    tmp_path: Path, cascade_path: Path
) -> None:
    rng = np.random.default_rng(5)
    specs = make_characters(2, 5)
    for k in range(3):
        folder = tmp_path / "alice"
        folder.mkdir(exist_ok=True)
        image, _ = render_character(specs[0], rng, 512)
        image.convert("RGB").save(folder / f"{k}.png")
    flat = tmp_path / "bob"
    flat.mkdir()
    Image.new("RGB", (400, 300), (200, 180, 160)).save(flat / "wall.png")
    render_character(specs[1], rng, 512)[0].convert("RGB").save(flat / "face.png")
    (flat / "notes.txt").write_text("not a picture")  # left out, not counted

    pictures = posts(tmp_path, None)
    assert {name: len(p) for name, p in pictures.items()} == {"alice": 3, "bob": 2}

    share = no_face_share(FaceDetector(cascade_path, FaceSettings()), pictures)
    assert share["pictures"] == 5
    assert share["by_character"] == {"alice": 0.0, "bob": 0.5}
    assert share["no_face"] == 0.2

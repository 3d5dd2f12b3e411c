"""Procedurally drawn anime-style characters for offline tests, demos and benchmarks.

Each character has stable traits (hair colour and shape, bangs, eye colour and shape, face shape,
skin, outfit, accessory); each image varies pose, scale, crop, position, background, lighting,
line weight and JPEG quality. Faces are drawn so the anime face cascade (lbpcascade_animeface)
finds them, and every image comes with its ground-truth face box.
"""

from sandbox.characters.augment import NEAR_DUPLICATE_KINDS, encode_jpeg, jpeg_bytes, near_duplicate
from sandbox.characters.dataset import SynthManifest, generate_dataset
from sandbox.characters.render import render_character, render_scene
from sandbox.characters.traits import CharacterSpec, make_characters

__all__ = [
    "NEAR_DUPLICATE_KINDS",
    "CharacterSpec",
    "SynthManifest",
    "encode_jpeg",
    "generate_dataset",
    "jpeg_bytes",
    "make_characters",
    "near_duplicate",
    "render_character",
    "render_scene",
]

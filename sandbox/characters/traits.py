"""Who the synthetic characters are: names, series and the stable traits a classifier must learn."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

# Hair colour carries most of a character's identity, so the palette keeps hues far apart and
# lighting changes (see render.py) stay small enough not to turn one into another.
HAIR_COLOURS: dict[str, tuple[int, int, int]] = {
    "black": (46, 44, 58),
    "brown": (120, 74, 42),
    "blonde": (242, 212, 118),
    "red": (204, 44, 48),
    "pink": (246, 150, 192),
    "blue": (52, 92, 208),
    "light_blue": (140, 204, 244),
    "green": (66, 162, 86),
    "purple": (128, 76, 184),
    "silver": (200, 204, 216),
    "orange": (242, 140, 46),
    "teal": (36, 158, 160),
}
EYE_COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (214, 40, 40),
    "blue": (40, 110, 230),
    "green": (40, 170, 80),
    "amber": (230, 150, 30),
    "purple": (150, 70, 210),
    "brown": (130, 80, 40),
    "pink": (240, 100, 170),
    "teal": (20, 170, 170),
    "grey": (120, 130, 150),
}
SKIN_TONES: dict[str, tuple[int, int, int]] = {
    "fair": (255, 232, 218),
    "light": (252, 222, 198),
    "warm": (244, 208, 178),
    "tan": (230, 188, 152),
}
OUTFIT_COLOURS: dict[str, tuple[int, int, int]] = {
    "navy": (40, 50, 110),
    "white": (240, 240, 244),
    "crimson": (170, 30, 50),
    "forest": (40, 110, 60),
    "black": (30, 30, 34),
    "sky": (120, 180, 230),
    "mustard": (220, 180, 50),
    "plum": (110, 50, 110),
    "grey": (130, 130, 140),
    "rose": (230, 130, 150),
}
HAIR_STYLES = ("short", "bob", "long", "twin_tails", "ponytail", "spiky")
BANGS = ("spiky", "straight", "swept", "parted")
EYE_SHAPES = ("round", "narrow", "droopy", "sharp")
FACE_SHAPES = ("round", "oval", "pointed", "square")
ACCESSORIES = ("none", "ribbon", "hairclip", "cat_ears", "headband", "flower", "beret")

# Traits that set characters apart; two characters must differ in at least two of them when possible.
IDENTITY_TRAITS = ("hair_colour", "hair_style", "eye_colour", "accessory", "bangs", "outfit")

GIVEN_NAMES = (
    "Aiko", "Akane", "Akira", "Asuka", "Ayame", "Chiaki", "Chihiro", "Emi", "Fumiko", "Hana",
    "Haru", "Haruka", "Hikari", "Hina", "Hinata", "Hiro", "Homura", "Ichika", "Izumi", "Kaede",
    "Kaito", "Kana", "Kaori", "Kasumi", "Kei", "Kenji", "Kotone", "Kyou", "Mai", "Makoto",
    "Mana", "Mei", "Midori", "Miku", "Minami", "Misaki", "Mitsuki", "Nagisa", "Nanami", "Natsuki",
    "Noa", "Rei", "Ren", "Rika", "Rin", "Ritsu", "Ryou", "Saki", "Sakura", "Satsuki",
    "Shiori", "Sora", "Suzu", "Takumi", "Tomoe", "Tsubasa", "Yui", "Yuki", "Yuna", "Yuzu",
)  # fmt: skip
FAMILY_NAMES = (
    "Tanaka", "Suzuki", "Takahashi", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi",
    "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura",
    "Hayashi", "Shimizu", "Yamazaki", "Mori", "Ikeda", "Hashimoto", "Ishikawa", "Ogawa",
    "Fujita", "Okada", "Goto", "Hasegawa", "Murakami", "Kondo", "Ishii", "Sakamoto",
    "Aoyama", "Fujiwara", "Nishimura", "Fukuda", "Ota", "Miura", "Takeuchi", "Nakano",
)  # fmt: skip
SERIES_HEADS = (
    "Starlight", "Sakura", "Crimson", "Azure", "Midnight", "Silver", "Summer", "Clockwork",
    "Moonlit", "Eternal", "Paper", "Lantern", "Cosmic", "Velvet", "Thunder", "Whispering",
)  # fmt: skip
SERIES_TAILS = (
    "Academy", "Melody", "Chronicles", "Diaries", "Rhapsody", "Frontier", "Café", "Idols",
    "Saga", "Club", "Garden", "Requiem", "Express", "Shrine", "Detectives", "Festival",
)  # fmt: skip
CHARACTERS_PER_SERIES = 4


@dataclass(frozen=True)
class CharacterSpec:
    name: str
    slug: str
    series: str
    traits: dict[str, Any]

    def __hash__(self) -> int:  # traits is a dict: hash by the unique slug instead
        return hash(self.slug)

    def colour(self, trait: str) -> tuple[int, int, int]:
        """The RGB value of a colour trait (hair_colour, eye_colour, skin, outfit, accent)."""
        value = self.traits[f"{trait}_rgb"]
        return (int(value[0]), int(value[1]), int(value[2]))


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _jitter(rgb: tuple[int, int, int], rng: np.random.Generator, amount: int) -> list[int]:
    # A small per-character offset so two characters sharing a palette colour are not pixel-equal.
    return [int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in rgb]


_OPTIONS: dict[str, list[str]] = {
    "hair_colour": list(HAIR_COLOURS),
    "hair_style": list(HAIR_STYLES),
    "eye_colour": list(EYE_COLOURS),
    "accessory": list(ACCESSORIES),
    "bangs": list(BANGS),
    "outfit": list(OUTFIT_COLOURS),
}


CANDIDATES = 24  # trait sets drawn per character, the most distinct one is kept


def luma(rgb: tuple[int, int, int] | list[int]) -> float:
    return 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]


def _finish_traits(identity: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
    """The full trait set for chosen identity codes, with the traits that do not set characters apart."""
    traits: dict[str, Any] = {
        t: _OPTIONS[t][int(code)] for t, code in zip(IDENTITY_TRAITS, identity, strict=True)
    }
    hair = HAIR_COLOURS[traits["hair_colour"]]
    # The face detector works on greyscale: light hair over a darker face (blonde on tan) makes the
    # face vanish into the hair, so the skin must stay clearly lighter than the hair.
    skins = [s for s, rgb in SKIN_TONES.items() if luma(rgb) >= luma(hair) + 20] or ["fair"]
    traits["skin"] = skins[int(rng.integers(len(skins)))]
    traits["eye_shape"] = EYE_SHAPES[int(rng.integers(len(EYE_SHAPES)))]
    traits["face_shape"] = FACE_SHAPES[int(rng.integers(len(FACE_SHAPES)))]
    accents = list(EYE_COLOURS)
    traits["accent"] = accents[int(rng.integers(len(accents)))]  # ribbons, clips, hair ties
    return traits


def _unique_combinations(parts: tuple[tuple[str, ...], ...], n: int, rng: np.random.Generator) -> list[str]:
    """`n` distinct "a b" strings drawn from the product of `parts`, in random order.

    Past the number of combinations a counter suffix ("Aiko Tanaka 2") keeps them unique.
    """
    combos = [" ".join(words) for words in itertools.product(*parts)]
    order = rng.permutation(len(combos))
    return [
        combos[int(order[i % len(combos)])] + ("" if i < len(combos) else f" {i // len(combos) + 1}")
        for i in range(n)
    ]


def make_characters(n: int, seed: int) -> list[CharacterSpec]:
    """`n` characters with unique names and distinct traits, the same for the same seed.

    Traits are drawn so every pair differs in at least two identity traits (one when the trait space
    runs out), which keeps characters learnable without one trait being the only giveaway.
    """
    if n < 1:
        raise ValueError(f"need at least one character, got n={n}")
    rng = np.random.default_rng([seed, 0x5EED])
    names = _unique_combinations((GIVEN_NAMES, FAMILY_NAMES), n, rng)
    series = _unique_combinations((SERIES_HEADS, SERIES_TAILS), -(-n // CHARACTERS_PER_SERIES), rng)
    sizes = np.array([len(_OPTIONS[t]) for t in IDENTITY_TRAITS])
    identities = np.empty((n, len(IDENTITY_TRAITS)), dtype=np.int64)
    chosen: list[dict[str, Any]] = []
    for k in range(n):
        candidates = rng.integers(0, sizes, size=(CANDIDATES, len(sizes)))
        # Greedy max-min distance: the candidate differing in the most traits from its nearest peer.
        if k == 0:
            best = 0
        else:
            differing = (candidates[:, None, :] != identities[None, :k, :]).sum(axis=2)
            best = int(differing.min(axis=1).argmax())
        identities[k] = candidates[best]
        chosen.append(_finish_traits(candidates[best], rng))
    specs = []
    for i, (name, traits) in enumerate(zip(names, chosen, strict=True)):
        traits = dict(traits)
        traits["hair_colour_rgb"] = _jitter(HAIR_COLOURS[traits["hair_colour"]], rng, 10)
        traits["eye_colour_rgb"] = _jitter(EYE_COLOURS[traits["eye_colour"]], rng, 12)
        traits["skin_rgb"] = list(SKIN_TONES[traits["skin"]])
        traits["outfit_rgb"] = _jitter(OUTFIT_COLOURS[traits["outfit"]], rng, 8)
        traits["accent_rgb"] = list(EYE_COLOURS[traits["accent"]])
        specs.append(
            CharacterSpec(
                name=name,
                slug=slugify(name),
                series=series[i // CHARACTERS_PER_SERIES],
                traits=traits,
            )
        )
    return specs

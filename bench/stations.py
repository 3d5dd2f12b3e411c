"""The bots a benchmark runs against the fake Discord (`bench.bot`, `bench.load`, `bench.scale`):
each with a data folder, catalog and registry copy of its own, the variant's face finder and (for
the memory variants) a promoted version with a character memory; and the unique uploads they are
sent."""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import colour_weight, gate_columns
from bot.app import NamaeBot
from catalog.db import open_catalog
from catalog.finder_store import finder_folder
from catalog.guilds import GuildSettingsStore
from catalog.settings import Settings
from media.faces import face_finder
from models.answer import Answer
from models.card import read_card
from models.registry import Registry
from namae.sandbox_session import name_model_labels
from sandbox.characters import jpeg_bytes, make_characters, render_character, render_scene
from sandbox.discord import FakeGuild

# faces_two_looks: the memory, with second-look margins that take in every face (each face and its
# mirror image): the most a second look can cost; bench/openset.py measures how many faces take it.
EVERY_FACE_TWICE = (2.0, 2.0)
TRAINED = "trained_faces"  # with --face-finder: the trained finder instead of the cascade
# with --members N: the memory variant on a graph of N training runs (`NAMAE_TRAIN__MEMBERS`),
# every member on every face ...
MEMBERS = "faces_memory_members"
# ... and the same version with its first look (`models.card.FirstLook`), member 1 deciding every
# face alone: the floor of what a version of N members costs (bench/openset.py measures the share
# of faces it hands over to every member)
MEMBERS_FIRST = "faces_memory_first"
# The memory the third bot answers with: the scale, 100 characters x 200 faces.
MEMORY_CHARACTERS, MEMORY_FACES = 100, 200
PORTRAIT = 768
SCENE = (1280, 720)
JPEG_QUALITY = 90
STARTED = time.perf_counter()


class Pictures:
    """Unique uploads, two portraits then a scene, over and over, all from one seeded generator."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.specs = make_characters(8, seed)
        self.drawn = 0
        self.digests: set[bytes] = set()

    def take(self, count: int) -> list[bytes]:
        return [self._one() for _ in range(count)]

    def _one(self) -> bytes:
        if self.drawn % 3 == 2:
            chosen = self.rng.choice(len(self.specs), size=2 + (self.drawn // 3) % 2, replace=False)
            image, _ = render_scene([self.specs[int(i)] for i in chosen], self.rng, size=SCENE)
        else:
            image, _ = render_character(
                self.specs[int(self.rng.integers(len(self.specs)))], self.rng, PORTRAIT
            )
        data = jpeg_bytes(image, JPEG_QUALITY)
        digest = hashlib.sha256(data).digest()
        # The bot keys its cache and image store by sha256: a repeated picture would measure neither.
        if digest in self.digests:
            raise RuntimeError(f"picture {self.drawn} repeats an earlier one; change the seed")
        self.digests.add(digest)
        self.drawn += 1
        return data


@dataclass
class Station:
    """One bot (with a catalog and data folder of its own) and the channel it answers in."""

    mode: str
    bot: NamaeBot
    channel: int


def say(text: str) -> None:
    print(f"[{time.perf_counter() - STARTED:6.1f} s] {text}", file=sys.stderr, flush=True)


def _settings(data_dir: Path, cascade: Path, finder: Path | None = None) -> Settings:
    faces: dict[str, Any] = {"cascade_path": cascade, "finder": "cascade"}
    if finder is not None:
        faces |= {"finder": "trained", "trained_dir": finder}
    return Settings(
        data_dir=data_dir,
        faces=faces,
        download={"hosts": {"media.discordapp.net": "127.0.0.1"}, "retries": 0},
        # Cooldowns would drop a burst's messages; a cache would answer without classifying.
        discord={"member_cooldown_rate": 100_000, "guild_cooldown_rate": 100_000, "cache_size": 0},
        _env_file=None,
    )


def make_station(
    mode: str,
    data_dir: Path,
    cascade: Path,
    registry_root: Path,
    guild: FakeGuild,
    finder: Path | None = None,
) -> Station:
    data_dir.mkdir(parents=True)
    settings = _settings(data_dir, cascade, finder if mode == TRAINED else None)
    shutil.copytree(registry_root, settings.registry_dir)
    registry = Registry.from_settings(settings)
    if registry.active_dir() is None:
        raise SystemExit(f"no active model in {registry_root}")
    engine = open_catalog(settings.resolved_database_url)
    channel = guild.add_channel(f"pictures-{mode.replace('_', '-')}")
    GuildSettingsStore(engine).enable_channel(guild.id, channel)
    if mode in ("faces_memory", "faces_two_looks", MEMBERS, MEMBERS_FIRST):
        twice = EVERY_FACE_TWICE if mode == "faces_two_looks" else None
        _with_memory(
            registry, MEMORY_CHARACTERS, MEMORY_FACES, second_look=twice, first=mode == MEMBERS_FIRST
        )
    detector = face_finder(settings, finder_folder(settings)) if mode != "no_faces" else None
    bot = NamaeBot(
        settings,
        engine,
        registry,
        detector=detector,
        guild_ready_timeout=0.05,
        fetch_exempt_networks=("127.0.0.0/8",),
    )
    name_model_labels(bot)  # as after a real training run: replies carry names, not slugs
    return Station(mode, bot, channel)


def _with_memory(
    registry: Registry,
    characters: int,
    faces: int,
    second_look: tuple[float, float] | None = None,
    *,
    first: bool = False,
) -> None:
    """Promote a copy of the active version that carries a character memory of `characters` x
    `faces` faces (random unit vectors, seeded) and open-set thresholds, so that every answer goes
    through the memory as a trained model's would (with `second_look`'s margins). `first`: with
    member 1's graph (the registry's newest candidate, `bench.model`) as its first look, which
    decides every face alone (no margins)."""
    from models import colour
    from models.card import CARD_NAME, INT8_NAME, ONNX_NAME, sha256_file
    from models.memory import MEMORY_NAME, CharacterMemory, MemoryEntry
    from models.openset import OpenSetThresholds

    active = registry.active_dir()
    assert active is not None
    card = read_card(active)
    version, folder = registry.new_version_dir()
    shutil.copy2(active / ONNX_NAME, folder / ONNX_NAME)
    if card.int8 is not None:
        shutil.copy2(active / INT8_NAME, folder / INT8_NAME)
    weight = colour_weight(card)
    dim = colour.width(card.embedding_dim or 1280, weight)
    rng = np.random.default_rng(16)
    memory = CharacterMemory(dim)
    names = [*card.labels, *(f"memory character {i:03d}" for i in range(characters - len(card.labels)))]
    for name in names:
        vectors = rng.standard_normal((faces, dim)).astype(np.float32)
        memory.add(MemoryEntry(f"{name}:{i}", name, "bench", v) for i, v in enumerate(vectors))
    memory.save(folder / MEMORY_NAME)
    thresholds = OpenSetThresholds(
        sharpness=30.0, name=0.8, pair=0.9, known=0.3, not_character=0.1,
        offsets={1: 0.15, 5: 0.03, 20: 0.01, 200: 0.0}, min_examples=5, colour=weight,
        gate=gate_columns(card), gate_offsets={1: 0.12, 5: 0.02, 20: 0.01, 200: 0.0},
        second_look=second_look,
    )  # fmt: skip
    looks_first = _first_look(registry, folder, card, thresholds) if first else None
    fresh = card.model_copy(
        update={"version": version, "parent": card.version, "open_set": thresholds,
                "onnx_sha256": sha256_file(folder / ONNX_NAME), "first_look": looks_first}
    )  # fmt: skip
    (folder / CARD_NAME).write_text(fresh.to_json())
    registry.register(folder)
    if not registry.promote(version, force=True).promoted:
        raise SystemExit("could not promote the memory variant")


def _first_look(registry: Registry, folder: Path, card: Any, thresholds: Any) -> Any:
    """Member 1's graphs (the newest candidate) copied into `folder` as a first look whose bars are
    `thresholds` in member 1's columns and which hands no face over."""
    from models import colour
    from models.card import FIRST_INT8_NAME, FIRST_NAME, INT8_NAME, ONNX_NAME, FirstLook, sha256_file
    from models.open_world import member_columns

    member = registry.version_dir(registry.newest_candidate())
    own = read_card(member)
    shutil.copy2(member / ONNX_NAME, folder / FIRST_NAME)
    if own.int8 is not None:
        shutil.copy2(member / INT8_NAME, folder / FIRST_INT8_NAME)
    count = (card.embedding_dim or 0) // (own.embedding_dim or 1)
    gate = gate_columns(own)
    last = gate[0] if gate is not None else own.embedding_dim or 0
    middle = (own.embedding_dim or 0) - last
    columns = member_columns(count, last, middle, colour.BINS if thresholds.colour > 0 else 0)
    return FirstLook(
        members=count, sha256=sha256_file(folder / FIRST_NAME), int8=own.int8,
        open_set=thresholds.model_copy(update={"gate": gate}), columns=columns, margins=(0.0, 0.0),
    )  # fmt: skip


def direct_answer(station: Station) -> Callable[[bytes], Answer]:
    """The bot's own decode-to-answer, called synchronously: no Discord, no event loop, no cache."""
    return station.bot.inference.compute


def registry_with_model(registry: Path | None, tmp: Path) -> tuple[Path, dict[str, Any]]:
    if registry is not None:
        active = Registry(registry).active_dir()
        if active is None:
            raise SystemExit(f"no active model in {registry}")
        card = read_card(active)
        return registry, {"version": card.version, "backbone": card.backbone, "image_size": card.image_size}
    # Only here: the export needs torch, which a run on a given registry never imports.
    from bench.model import export_default_model

    model = export_default_model(tmp / "models")
    described = {"version": model.version, "backbone": model.backbone, "image_size": model.image_size}
    return model.registry_root, described | {"weights": model.weights}

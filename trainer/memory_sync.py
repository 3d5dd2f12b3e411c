"""Labelled faces into the active version's character memory, without a retrain.

After a scrape, an import or a promotion the worker calls `remember_new_faces`: every labelled face
in the catalog (the trainer's own view of the labelled set, `trainer.catalog_source.from_catalog`) that
neither the version's trained memory (`memory.npz`) nor its catalog rows hold yet is embedded with
the version's ONNX model and appended as a row (`catalog.memory`), where the bot picks it up on its
next poll. Faces are read through the image store, so nothing here assumes the bot's disk. A
character already holding `max_per_character` faces takes no more.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, select

from catalog.db import session_scope
from catalog.memory import NewMemoryFace, add_faces, known_keys, rows_since
from catalog.schema import Character
from catalog.settings import Settings
from models.classifier import Classifier
from models.errors import NoActiveModel
from models.memory import MEMORY_NAME, CharacterMemory, encode_embedding
from models.registry import Registry
from trainer.catalog_source import from_catalog
from trainer.dataset import PixelLoader

log = logging.getLogger(__name__)

BATCH = 64


def remember_new_faces(
    settings: Settings,
    engine: Engine,
    *,
    registry: Registry | None = None,
    progress: Callable[[float, str], None] | None = None,
) -> dict[str, Any]:
    """Embed the labelled faces the active version's memory lacks and append them as catalog rows.
    Returns counts (added, already known, skipped for a full character)."""
    registry = registry or Registry.from_settings(settings, engine)
    try:
        version, folder = registry.require_active()
    except NoActiveModel:
        return {"added": 0, "skipped": "no active model"}
    base = CharacterMemory.load(folder / MEMORY_NAME) if (folder / MEMORY_NAME).is_file() else None
    have = (base.keys() if base is not None else set()) | known_keys(engine, version)
    held: Counter[str] = Counter(base.counts() if base is not None else {})
    for row in rows_since(engine, version):
        if row.character is not None:
            held[row.character] += 1
    assembled = from_catalog(engine, settings)
    with session_scope(engine) as session:
        ids = {name: cid for cid, name in session.execute(select(Character.id, Character.name))}
    missing, full = [], 0
    for item in assembled.items:
        if item.key in have:
            continue
        if held[item.label] >= settings.memory.max_per_character:
            full += 1
            continue
        held[item.label] += 1
        missing.append(item)
    if not missing:
        return {"version": version, "added": 0, "known": len(have), "full": full}
    classifier = Classifier.load(folder, intra_op_threads=1, int8=settings.registry.int8)
    loader = PixelLoader(settings, classifier.image_size)
    added = 0
    for start in range(0, len(missing), BATCH):
        batch = missing[start : start + BATCH]
        embeddings = classifier.infer([loader(item) for item in batch]).vectors
        with session_scope(engine) as session:
            added += add_faces(
                session,
                version,
                [
                    NewMemoryFace(item.key, ids[item.label], item.origin, encode_embedding(vector))
                    for item, vector in zip(batch, embeddings, strict=True)
                    if item.label in ids
                ],
            )
        if progress is not None:
            progress(min(1.0, (start + len(batch)) / len(missing)), f"memory: {added} faces added")
    log.info("memory of %s: %d labelled faces added (%d were there)", version, added, len(have))
    return {"version": version, "added": added, "known": len(have), "full": full}

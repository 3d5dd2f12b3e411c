"""Import an existing folder-per-character dataset (the Kaggle Simpsons layout) into the catalog.

    dataset/
      homer_simpson/pic_0000.jpg ...
      lisa_simpson/pic_0000.jpg ...

Each sub-folder is a character (created if missing, named from the folder: `homer_simpson` ->
"Homer Simpson") with a `folder` source; each file goes through the same cleaning path as a
Reddit download (validation, exact and near dedup, faces) with the label origin `folder`.
Importing the same folder again reads nothing it has already recorded.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from rich.progress import Progress
from sqlalchemy import Engine, select

from catalog.characters import NewCharacter, add_character, find_character, name_key
from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.finder_store import finder_folder
from catalog.schema import LabelOrigin, Source, SourceKind
from catalog.settings import Settings
from catalog.store import ImageStore, sha256_of
from media.faces import face_finder
from scraper.candidates import ImageOrigin
from scraper.dedup import HashIndex
from scraper.ingest import Ingestor
from scraper.outcomes import IngestOutcome, OutcomeKind, Prepared, unfetched_key
from scraper.summary import ScrapeSummary, SourceCounts

log = logging.getLogger(__name__)


def character_name_from_folder(name: str) -> str:
    """'homer_simpson' -> 'Homer Simpson'; a name with capitals or spaces is kept as written."""
    words = name.replace("_", " ").replace("-", " ").split()
    if any(ch.isupper() for ch in name):
        return " ".join(words)
    return " ".join(word.capitalize() for word in words)


def _character_and_source(engine: Engine, folder: Path) -> tuple[int, str, int]:
    """(character id, character name, source id) for a character folder, creating what is missing."""
    name = character_name_from_folder(folder.name)
    with session_scope(engine) as session:
        try:
            character = find_character(session, name)
            character_id, character_name = character.id, character.name
        except CatalogError:
            character_id = None
    if character_id is None:
        character_id = add_character(engine, NewCharacter(name=name))
        character_name = name
    location = str(folder.resolve())
    with session_scope(engine) as session:
        source_id = session.scalar(
            select(Source.id).where(
                Source.character_id == character_id,
                Source.kind == SourceKind.folder,
                Source.query == location,
            )
        )
        if source_id is None:
            source = Source(character_id=character_id, kind=SourceKind.folder, query=location)
            session.add(source)
            session.flush()
            source_id = source.id
    return character_id, character_name, source_id


def character_folders(root: Path) -> list[Path]:
    return sorted(
        (p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".") and name_key(p.name)),
        key=lambda p: p.name,
    )


def image_files(folder: Path) -> list[Path]:
    """Every regular, non-hidden file below `folder`, in a stable order."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            if not filename.startswith("."):
                path = Path(dirpath) / filename
                if path.is_file():
                    found.append(path)
    return found


def import_folder(
    settings: Settings, engine: Engine, folder: Path, *, progress: Progress | None = None
) -> ScrapeSummary:
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise CatalogError(f"{root} is not a folder")
    folders = character_folders(root)
    if not folders:
        raise CatalogError(f"{root} has no character sub-folders (expected <root>/<character name>/<images>)")
    store = ImageStore.from_settings(settings)
    detector = face_finder(settings, finder_folder(settings))
    ingestor = Ingestor(engine, store, settings, detector, HashIndex.load(engine))
    summary = ScrapeSummary()
    workers = max(1, min(4, os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="namae-import") as pool:
        for sub in folders:
            character_id, character_name, source_id = _character_and_source(engine, sub)
            files = image_files(sub)
            counts = SourceCounts(character=character_name, source=f"folder {sub.name}", posts=len(files))
            counts.seen = len(files)
            summary.rows.append(counts)
            task = progress.add_task(f"{character_name}: {sub.name}", total=len(files)) if progress else None
            origins = [
                ImageOrigin(
                    url=path.resolve().as_uri(),
                    source_id=source_id,
                    character_id=character_id,
                    origin=LabelOrigin.folder,
                    title=path.name,
                )
                for path in files
            ]
            # A sliding window keeps at most 2 x workers files in memory; commits follow file order.
            pending: deque[tuple[ImageOrigin, Future[Prepared | IngestOutcome | str]]] = deque()
            for path, origin in zip(files, origins, strict=True):
                pending.append((origin, pool.submit(_read_and_prepare, ingestor, path, origin, settings)))
                if len(pending) >= 2 * workers:
                    _commit_next(ingestor, pending, counts, progress, task)
            while pending:
                _commit_next(ingestor, pending, counts, progress, task)
    return summary


def _read_and_prepare(
    ingestor: Ingestor, path: Path, origin: ImageOrigin, settings: Settings
) -> Prepared | IngestOutcome | str:
    if ingestor.is_known(origin):
        return IngestOutcome(OutcomeKind.known)
    try:
        size = path.stat().st_size
        if size > settings.images.max_bytes:
            detail = f"The file has {size:,} bytes, more than the limit of {settings.images.max_bytes:,}."
            return Prepared(sha256=unfetched_key(origin.url), data=b"", rejection=("too_large", detail))
        data = path.read_bytes()
    except OSError as exc:
        return IngestOutcome(OutcomeKind.error, reason="unreadable", detail=f"{path}: {exc.strerror or exc}")
    sha = sha256_of(data)
    if ingestor.has_sha256(sha):
        return sha
    return ingestor.prepare(data)


def _commit_next(
    ingestor: Ingestor,
    pending: deque[tuple[ImageOrigin, Future[Prepared | IngestOutcome | str]]],
    counts: SourceCounts,
    progress: Progress | None,
    task: object,
) -> None:
    origin, future = pending.popleft()
    prepared = future.result()
    if isinstance(prepared, IngestOutcome):
        outcome = prepared
    elif isinstance(prepared, str):
        outcome = ingestor.commit_existing(prepared, origin)
    else:
        outcome = ingestor.commit(prepared, origin)
    counts.record(outcome)
    if progress is not None and task is not None:
        progress.advance(task)

"""The character memory: L2-normalized face embeddings per character, and the nearest-neighbour
evidence an answer reads from it.

A model version carries the memory of the faces it was trained on (`memory.npz` in its registry
folder); labels that land later (a scraped new character, an import, a vote confirmed by quorum or a
moderator) arrive as rows in the catalog and are added here without a retrain. A row without an
embedding is a tombstone: that face left the memory (relabelled "not a character", forgotten).

Evidence for one face is, per character, the mean cosine similarity to its `k` nearest stored
faces. Only the `shortlist` characters whose prototype (the normalized mean of their faces) is
closest are searched face by face, so a query costs O(characters x dim) plus
O(shortlist x faces per character x dim) whatever the memory holds in all.
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.errors import ModelLoadError

MEMORY_NAME = "memory.npz"
MEMORY_FORMAT = 1
DEFAULT_NEIGHBOURS = 5
DEFAULT_SHORTLIST = 4


EMBEDDING_DTYPE = np.dtype("<f2")  # how catalog rows and predictions keep a vector


class MemoryFileError(ModelLoadError):
    """A memory file or row that cannot be used (wrong width, unreadable file)."""


def encode_embedding(vector: np.ndarray) -> bytes:
    """An embedding as the bytes a catalog row keeps (float16, little-endian)."""
    return np.asarray(vector, dtype=np.float32).reshape(-1).astype(EMBEDDING_DTYPE).tobytes()


def decode_embedding(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype=EMBEDDING_DTYPE).astype(np.float32)


@dataclass(frozen=True)
class MemoryEntry:
    key: str  # names the pixels: the face crop's (or whole image's) sha256
    character: str  # the model label or catalog name the face is labelled with
    origin: str  # the label's origin (training, subreddit, folder, vote, moderator, ...)
    embedding: np.ndarray | None  # None: a tombstone, the key leaves the memory


@dataclass(frozen=True)
class Evidence:
    """Per-character similarity of a batch of faces: `similarity[i, j]` is face i against
    `characters[j]` (mean of its k nearest stored faces; -1 where a character was not shortlisted)."""

    characters: list[str]
    similarity: np.ndarray  # (faces, characters) float32

    def best(self, row: int) -> tuple[str, float] | None:
        if not self.characters:
            return None
        j = int(np.argmax(self.similarity[row]))
        return self.characters[j], float(self.similarity[row, j])


class CharacterMemory:
    """In-memory index of labelled face embeddings. Not thread-safe for writers: the owner adds rows
    from one thread and readers see either the old or the new state of each call."""

    def __init__(
        self, dim: int, *, neighbours: int = DEFAULT_NEIGHBOURS, shortlist: int = DEFAULT_SHORTLIST
    ) -> None:
        if dim <= 0:
            raise MemoryFileError(f"embedding width must be positive, got {dim}")
        self.dim = dim
        self.neighbours = max(1, neighbours)
        self.shortlist = max(1, shortlist)
        self._vectors = np.zeros((0, dim), dtype=np.float32)
        self._keys: list[str] = []
        self._characters: list[str] = []
        self._origins: list[str] = []
        self._row_of: dict[str, int] = {}
        self._dirty = True
        self._names: list[str] = []
        self._rows_per: list[np.ndarray] = []
        self._prototypes = np.zeros((0, dim), dtype=np.float32)

    # -- contents ---------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, key: object) -> bool:
        return key in self._row_of

    def characters(self) -> list[str]:
        self._refresh()
        return list(self._names)

    def counts(self) -> dict[str, int]:
        self._refresh()
        return {name: len(rows) for name, rows in zip(self._names, self._rows_per, strict=True)}

    def count(self, character: str) -> int:
        return self.counts().get(character, 0)

    def origins(self, character: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for key, row in self._row_of.items():
            if self._characters[row] == character:
                origin = self._origins[row]
                out[origin] = out.get(origin, 0) + 1
                del key
        return out

    def keys(self) -> set[str]:
        return set(self._row_of)

    def add(self, entries: Iterable[MemoryEntry]) -> int:
        """Add, replace (same key) or remove (tombstone) entries; returns how many changed."""
        fresh: list[np.ndarray] = []
        changed = 0
        for entry in entries:
            if entry.embedding is None:
                if entry.key in self._row_of:
                    del self._row_of[entry.key]
                    changed += 1
                continue
            vector = np.asarray(entry.embedding, dtype=np.float32).reshape(-1)
            if vector.shape[0] != self.dim:
                raise MemoryFileError(
                    f"embedding of {entry.key[:12]} has width {vector.shape[0]}, not {self.dim}"
                )
            norm = float(np.linalg.norm(vector))
            if not np.isfinite(norm) or norm == 0.0:
                continue
            row = len(self._keys)
            self._keys.append(entry.key)
            self._characters.append(entry.character)
            self._origins.append(entry.origin)
            self._row_of[entry.key] = row  # a later entry for the same key replaces the earlier
            fresh.append(vector / norm)
            changed += 1
        if fresh:
            self._vectors = np.concatenate([self._vectors, np.stack(fresh)])
        if changed:
            self._dirty = True
            if len(self._keys) > 2 * max(64, len(self._row_of)):
                self._compact()
        return changed

    def _compact(self) -> None:
        live = sorted(self._row_of.values())
        self._vectors = self._vectors[live]
        self._keys = [self._keys[r] for r in live]
        self._characters = [self._characters[r] for r in live]
        self._origins = [self._origins[r] for r in live]
        self._row_of = {key: i for i, key in enumerate(self._keys)}

    def _refresh(self) -> None:
        if not self._dirty:
            return
        by_name: dict[str, list[int]] = {}
        for row in sorted(self._row_of.values()):
            by_name.setdefault(self._characters[row], []).append(row)
        self._names = sorted(by_name)
        self._rows_per = [np.asarray(by_name[n], dtype=np.int64) for n in self._names]
        if self._names:
            means = np.stack([self._vectors[rows].mean(0) for rows in self._rows_per])
            norms = np.linalg.norm(means, axis=1, keepdims=True)
            self._prototypes = (means / np.maximum(norms, 1e-12)).astype(np.float32)
        else:
            self._prototypes = np.zeros((0, self.dim), dtype=np.float32)
        self._dirty = False

    # -- evidence -----------------------------------------------------------------------------------

    def prototypes(self) -> tuple[list[str], np.ndarray]:
        self._refresh()
        return list(self._names), self._prototypes

    def evidence(self, embeddings: np.ndarray) -> Evidence:
        """Per-character similarity of each (L2-normalized) embedding: the mean cosine of its
        `neighbours` nearest faces of that character, for the `shortlist` characters whose
        prototypes are closest; the others get their prototype cosine minus 1 (never chosen over a
        shortlisted one, still ordered)."""
        self._refresh()
        queries = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if not self._names:
            return Evidence([], np.zeros((len(queries), 0), dtype=np.float32))
        by_prototype = queries @ self._prototypes.T
        similarity = by_prototype - 1.0
        short = min(self.shortlist, len(self._names))
        top = np.argpartition(-by_prototype, short - 1, axis=1)[:, :short]
        for i, query in enumerate(queries):
            for j in top[i]:
                rows = self._rows_per[j]
                sims = self._vectors[rows] @ query
                k = min(self.neighbours, len(sims))
                similarity[i, j] = float(np.partition(sims, len(sims) - k)[-k:].mean())
        return Evidence(list(self._names), similarity.astype(np.float32))

    # -- files ---------------------------------------------------------------------------------------

    def entries(self) -> list[MemoryEntry]:
        return [
            MemoryEntry(key, self._characters[row], self._origins[row], self._vectors[row])
            for key, row in sorted(self._row_of.items(), key=lambda kv: kv[1])
        ]

    def to_bytes(self) -> bytes:
        """The memory as an .npz file (float16 vectors: half the bytes, cosine error ~1e-3)."""
        live = sorted(self._row_of.values())
        buffer = io.BytesIO()
        np.savez_compressed(
            buffer,
            format=np.asarray(MEMORY_FORMAT),
            dim=np.asarray(self.dim),
            vectors=self._vectors[live].astype(np.float16),
            keys=np.asarray([self._keys[r] for r in live], dtype=str),
            characters=np.asarray([self._characters[r] for r in live], dtype=str),
            origins=np.asarray([self._origins[r] for r in live], dtype=str),
        )
        return buffer.getvalue()

    def save(self, path: Path) -> None:
        Path(path).write_bytes(self.to_bytes())

    @classmethod
    def from_bytes(cls, data: bytes, **kw: int) -> CharacterMemory:
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                if int(npz["format"]) != MEMORY_FORMAT:
                    raise MemoryFileError(f"memory format {int(npz['format'])} is not {MEMORY_FORMAT}")
                memory = cls(int(npz["dim"]), **kw)
                vectors = npz["vectors"].astype(np.float32)
                memory.add(
                    MemoryEntry(str(k), str(c), str(o), v)
                    for k, c, o, v in zip(
                        npz["keys"], npz["characters"], npz["origins"], vectors, strict=True
                    )
                )
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            if isinstance(exc, MemoryFileError):
                raise
            raise MemoryFileError(f"not a character memory file: {exc}") from exc
        return memory

    @classmethod
    def load(cls, path: Path, **kw: int) -> CharacterMemory:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise MemoryFileError(f"{path}: {exc.strerror or exc}") from exc
        return cls.from_bytes(data, **kw)

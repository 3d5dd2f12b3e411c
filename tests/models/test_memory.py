"""The character memory index: adding, replacing and removing faces, the k-nearest evidence, files."""

from __future__ import annotations

import numpy as np
import pytest

from models.memory import (
    CharacterMemory,
    MemoryEntry,
    MemoryFileError,
    decode_embedding,
    encode_embedding,
)


def _unit(rng: np.random.Generator, centre: np.ndarray, spread: float) -> np.ndarray:
    v = centre + spread * rng.standard_normal(centre.shape)
    return (v / np.linalg.norm(v)).astype(np.float32)


def _clustered(n_chars: int = 4, per: int = 12, dim: int = 16, seed: int = 0) -> tuple[CharacterMemory, list]:
    rng = np.random.default_rng(seed)
    centres = [rng.standard_normal(dim) for _ in range(n_chars)]
    memory = CharacterMemory(dim, neighbours=3, shortlist=2)
    memory.add(
        MemoryEntry(f"k{c}-{i}", f"char{c}", "training", _unit(rng, centres[c], 0.3))
        for c in range(n_chars)
        for i in range(per)
    )
    return memory, centres


def test_evidence_names_the_nearest_character_and_keeps_the_order_of_the_rest() -> None:
    memory, centres = _clustered()
    rng = np.random.default_rng(1)
    queries = np.stack([_unit(rng, centres[c], 0.3) for c in range(4)])
    evidence = memory.evidence(queries)
    assert evidence.characters == ["char0", "char1", "char2", "char3"]
    assert list(evidence.similarity.argmax(1)) == [0, 1, 2, 3]
    # the shortlisted characters carry real cosines, the others sit below every shortlisted one
    for row in evidence.similarity:
        ranked = np.sort(row)[::-1]
        assert ranked[1] > ranked[2]
        assert ranked[2] < -0.0 or ranked[2] < ranked[1] - 0.5


def test_a_later_entry_replaces_the_same_key_and_a_tombstone_removes_it() -> None:
    memory, _ = _clustered(n_chars=2, per=3)
    assert memory.counts() == {"char0": 3, "char1": 3}
    moved = memory.entries()[0]
    memory.add([MemoryEntry(moved.key, "char1", "vote", moved.embedding)])
    assert memory.counts() == {"char0": 2, "char1": 4}
    memory.add([MemoryEntry(moved.key, "", "forgotten", None)])
    assert memory.counts() == {"char0": 2, "char1": 3}
    assert moved.key not in memory


def test_width_mismatch_is_refused() -> None:
    memory = CharacterMemory(8)
    with pytest.raises(MemoryFileError, match="width 4, not 8"):
        memory.add([MemoryEntry("a", "x", "vote", np.ones(4))])


def test_round_trip_through_bytes_keeps_entries_to_float16_precision() -> None:
    memory, centres = _clustered()
    again = CharacterMemory.from_bytes(memory.to_bytes(), neighbours=3, shortlist=2)
    assert again.counts() == memory.counts()
    q = np.stack([c / np.linalg.norm(c) for c in centres]).astype(np.float32)
    np.testing.assert_allclose(again.evidence(q).similarity, memory.evidence(q).similarity, atol=2e-3)


def test_garbage_is_not_a_memory_file() -> None:
    with pytest.raises(MemoryFileError, match="not a character memory file"):
        CharacterMemory.from_bytes(b"PK\x03\x04 nonsense")


def test_embedding_bytes_are_float16() -> None:
    v = np.linspace(-1, 1, 10, dtype=np.float32)
    data = encode_embedding(v)
    assert len(data) == 20
    np.testing.assert_allclose(decode_embedding(data), v, atol=1e-3)

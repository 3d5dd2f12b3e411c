"""The bot's answer service around `models.answer`: answers cached by (sha256, model version) in a
bounded LRU (cachetools), the least recently used out first; the timings it keeps stay bounded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bot.inference import TIMINGS_KEPT, InferenceService
from catalog.settings import Settings
from media.encode import encode_png
from models.classifier import Classifier
from models.registry import Registry
from tests.models.conftest import tiny_onnx  # noqa: F401  (the fixture)
from tests.models.helpers import stage_version


def pictures(n: int) -> list[bytes]:
    rng = np.random.default_rng(5)
    return [encode_png(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)) for _ in range(n)]


@pytest.fixture
def service_for(tmp_path: Path, tiny_onnx: Path):  # noqa: F811
    registry = Registry(tmp_path / "models", margin=0.01, keep_last=5)
    _, folder = stage_version(registry, tiny_onnx, f1=0.5)
    classifier = Classifier.load(folder, intra_op_threads=1)
    made: list[InferenceService] = []

    def make(cache_size: int) -> InferenceService:
        settings = Settings(data_dir=tmp_path / "data", discord={"cache_size": cache_size}, _env_file=None)
        made.append(InferenceService(settings, registry, classifier=classifier))
        return made[-1]

    yield make
    for service in made:
        service.close()


async def test_answers_are_cached_least_recently_used_out_first(service_for) -> None:
    service = service_for(2)
    a, b, c = pictures(3)
    first = await service.classify(a)
    await service.classify(b)
    again = await service.classify(a)  # a hit: a is now the most recently used
    assert again.faces == first.faces and again.seconds == 0.0
    await service.classify(c)  # the cache is full: b goes
    assert len(service.timings) == 3 and len(service.cache) == 2
    await service.classify(a)
    assert len(service.timings) == 3  # still cached
    await service.classify(b)
    assert len(service.timings) == 4  # computed again


async def test_a_cache_of_size_zero_keeps_nothing(service_for) -> None:
    service = service_for(0)
    (a,) = pictures(1)
    await service.classify(a)
    await service.classify(a)
    assert len(service.timings) == 2 and len(service.cache) == 0


def test_timings_are_bounded(service_for) -> None:
    assert service_for(1).timings.maxlen == TIMINGS_KEPT

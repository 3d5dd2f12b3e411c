"""One real ONNX export per session, shared by the registry and classifier tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.models.tiny import IMAGE_SIZE, TinyNet
from trainer.export import export_onnx


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    export_onnx(TinyNet(seed=0), out_path=path, image_size=IMAGE_SIZE)
    return path

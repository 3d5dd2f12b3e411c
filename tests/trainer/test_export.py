"""ONNX export: the graph's contract, the parity check, and export into the registry."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from models import preprocess
from models.card import CARD_NAME, ONNX_NAME
from models.classifier import Classifier
from models.registry import Registry
from tests.models.tiny import IMAGE_SIZE, LABELS, TinyNet, random_images
from trainer.backbones import embed
from trainer.export import ExportError, check_parity, export_onnx, export_version, normalize_batch


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TinyNet, Path]:
    net = TinyNet(seed=3)
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(net, out_path=path, image_size=IMAGE_SIZE)
    return net, path


class DivergentNet(TinyNet):
    """Exports a different function than it runs eagerly: what parity exists to catch."""

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        features = super().forward_features(x)
        return -features if torch.compiler.is_exporting() else features


def test_graph_contract(exported: tuple[TinyNet, Path]) -> None:
    _, path = exported
    model = onnx.load(str(path))
    onnx.checker.check_model(model, full_check=True)
    [graph_input] = model.graph.input
    assert graph_input.name == preprocess.INPUT_NAME
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    dims = graph_input.type.tensor_type.shape.dim
    assert dims[0].HasField("dim_param") and not dims[0].HasField("dim_value")
    assert [d.dim_value for d in dims[1:]] == [IMAGE_SIZE, IMAGE_SIZE, 3]
    assert [o.name for o in model.graph.output] == list(preprocess.OUTPUT_NAMES)
    assert not list(path.parent.glob(".*.tmp"))  # the temp file was renamed, not left behind


@pytest.mark.parametrize("batch", [1, 7])
def test_dynamic_batch_matches_torch(exported: tuple[TinyNet, Path], batch: int) -> None:
    import onnxruntime as ort

    net, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = preprocess.to_batch(random_images(batch, seed=batch), IMAGE_SIZE)
    logits, embedding = session.run(None, {preprocess.INPUT_NAME: images})
    assert logits.shape == (batch, len(LABELS)) and embedding.shape == (batch, 16)
    np.testing.assert_allclose(np.linalg.norm(embedding, axis=1), 1.0, atol=1e-5)
    with torch.inference_mode():
        reference = net(normalize_batch(images)).numpy()
    np.testing.assert_allclose(logits, reference, atol=1e-4)


def test_the_exported_embedding_is_the_signed_root_of_the_features_at_unit_length(
    exported: tuple[TinyNet, Path],
) -> None:
    import onnxruntime as ort

    net, path = exported
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    images = preprocess.to_batch(random_images(5, seed=21), IMAGE_SIZE)
    _, embedding = session.run(None, {preprocess.INPUT_NAME: images})
    with torch.inference_mode():
        features = net.forward_features(normalize_batch(images)).numpy()
    rooted = np.sign(features) * np.sqrt(np.abs(features))
    np.testing.assert_allclose(embedding, rooted / np.linalg.norm(rooted, axis=1, keepdims=True), atol=1e-5)


def test_the_root_keeps_a_shared_peak_from_hiding_how_two_faces_differ() -> None:
    # Two faces with the same large activation (what a trained character's faces share) that
    # differ in the small ones (what a character the net never saw is told apart by).
    a = torch.tensor([[9.0, 1.0, 0.0, 0.0]])
    b = torch.tensor([[9.0, 0.0, 1.0, 0.0]])
    plain = float(torch.nn.functional.normalize(a) @ torch.nn.functional.normalize(b).T)
    rooted = float(embed(a) @ embed(b).T)
    assert plain == pytest.approx(81 / 82) and rooted == pytest.approx(0.9)
    assert float(embed(a) @ embed(a).T) == pytest.approx(1.0)


def test_parity_on_validation_images(exported: tuple[TinyNet, Path]) -> None:
    net, path = exported
    report = check_parity(net, path, random_images(150, seed=11), IMAGE_SIZE)
    assert report.images == 150
    assert report.top1_agreement == 1.0
    assert report.max_abs_diff < 1e-4
    assert report.embedding_max_abs_diff < 1e-5
    assert report.provider == "CPUExecutionProvider"


def test_export_version_registers_a_complete_candidate(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    net = TinyNet(seed=4)
    net.train()  # the caller's mode survives the export
    version, parity = export_version(
        net,
        registry=registry,
        labels=LABELS,
        image_size=IMAGE_SIZE,
        temperature=1.4,
        thresholds={"Rin Ito": 0.7},
        metrics={"test_macro_f1": 0.81, "val_macro_f1": 0.8},
        dataset_fingerprint="sha256:abc",
        val_images=random_images(40, seed=1),
        backbone="tiny",
        extra={"run": "r1"},
    )
    assert net.training
    assert parity.top1_agreement == 1.0
    folder = registry.version_dir(version)
    assert sorted(p.name for p in folder.iterdir()) == [CARD_NAME, ONNX_NAME]
    raw = json.loads((folder / CARD_NAME).read_text())
    assert raw["labels"] == LABELS and raw["image_size"] == IMAGE_SIZE
    assert raw["input"] == {"name": "image", "layout": "NHWC", "dtype": "uint8"}
    assert raw["temperature"] == 1.4
    assert raw["thresholds"] == {"global": None, "per_class": {"Rin Ito": 0.7}}
    assert raw["metrics"]["test_macro_f1"] == 0.81 and raw["metrics"]["parity"]["top1_agreement"] == 1.0
    assert raw["dataset_fingerprint"] == "sha256:abc" and raw["parent"] is None
    assert raw["backbone"] == "tiny" and raw["extra"]["run"] == "r1" and raw["embedding_dim"] == 16
    assert raw["created_at"] and raw["onnx_sha256"]
    assert [e.status for e in registry.versions()] == ["candidate"]
    assert registry.promote(version).promoted

    # A second export names the first as its parent, and serves the same answers as torch.
    child, _ = export_version(
        TinyNet(seed=5),
        registry=registry,
        labels=LABELS,
        image_size=IMAGE_SIZE,
        temperature=1.0,
        thresholds=0.6,
        metrics={"test_macro_f1": 0.5},
        dataset_fingerprint="sha256:def",
        val_images=random_images(10, seed=2),
        backbone="tiny",
    )
    assert registry.card(child).parent == version
    assert registry.card(child).thresholds.global_threshold == 0.6
    assert not registry.promote(child).promoted  # worse on the test set: refused
    assert Classifier.from_registry(registry).version == version


def test_failed_parity_registers_nothing(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "models")
    with pytest.raises(ExportError, match="top-1 agreement"):
        export_version(
            DivergentNet(seed=6),
            registry=registry,
            labels=LABELS,
            image_size=IMAGE_SIZE,
            temperature=1.0,
            thresholds=0.5,
            metrics={"test_macro_f1": 0.9},
            dataset_fingerprint="x",
            val_images=random_images(30, seed=3),
            backbone="tiny",
        )
    assert registry.versions() == []
    assert not list(registry.staging_root.iterdir())
    assert registry.active_version() is None

"""The int8 graph: made and checked at export, checked again by every reader on its own machine."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from models import preprocess
from models.card import CARD_NAME, INT8_NAME, ONNX_NAME, read_card, sha256_file
from models.classifier import Classifier
from models.errors import ModelLoadError
from models.int8 import probe_batch
from models.registry import Registry
from models.versions import validate_folder
from tests.models.tiny import IMAGE_SIZE, LABELS, TinyNet, random_images
from trainer.export import export_onnx, export_version
from trainer.quantize import quantize


def _export(registry: Registry, net: TinyNet, calibration: list[np.ndarray]) -> Path:
    version, _ = export_version(
        net,
        registry=registry,
        labels=LABELS,
        image_size=IMAGE_SIZE,
        temperature=1.0,
        thresholds=0.5,
        metrics={"test_macro_f1": 0.8},
        dataset_fingerprint="sha256:int8",
        val_images=random_images(48, seed=5),
        backbone="tiny",
        int8=True,
        calibration_images=calibration,
    )
    return registry.version_dir(version)


def _decisive(seed: int) -> TinyNet:
    """A tiny net whose logits are far apart, as a trained model's are: at random weights its
    classes tie, and a rounding flips them."""
    net = TinyNet(seed=seed)
    with torch.no_grad():
        net.head.weight.mul_(25.0)
    return net


@pytest.fixture(scope="module")
def with_int8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    registry = Registry(tmp_path_factory.mktemp("int8") / "models")
    return _export(registry, _decisive(7), random_images(64, seed=9))


def test_the_export_ships_an_int8_graph_that_answers_like_the_float_one(with_int8: Path) -> None:
    assert sorted(p.name for p in with_int8.iterdir()) == [INT8_NAME, CARD_NAME, ONNX_NAME]
    card = read_card(with_int8)
    assert card.int8 is not None and card.int8.sha256 == sha256_file(with_int8 / INT8_NAME)
    assert card.int8.images == 48 and 0 < card.int8.sure_images <= 48
    assert card.int8.top1_agreement >= 0.98 and card.int8.cosine_median >= 0.99
    validate_folder(with_int8)  # both graphs load, have the card's signature and run

    fast = Classifier.load(with_int8)
    plain = Classifier.load(with_int8, int8=False)  # NAMAE_REGISTRY__INT8=false
    assert (fast.graph, plain.graph) == ("int8", "float")
    assert fast.session.get_modelmeta() is not None
    assert any(node.op_type == "QuantizeLinear" for node in _nodes(with_int8 / INT8_NAME))
    images = random_images(30, seed=31)
    p_fast, e_fast, _ = fast.infer(images)
    p_plain, e_plain, _ = plain.infer(images)
    assert np.mean(p_fast.argmax(1) == p_plain.argmax(1)) >= 0.95
    assert np.median(np.sum(e_fast * e_plain, axis=1)) > 0.99
    assert not np.array_equal(e_fast, e_plain)  # a different graph did answer


def _nodes(path: Path) -> list:
    import onnx

    return list(onnx.load(str(path)).graph.node)


def test_an_int8_graph_calibrated_on_the_wrong_pictures_is_not_shipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Black pictures teach activation ranges of zero width: real faces then clip, and the graph
    # answers unlike the float one. The version keeps its float graph alone.
    black = [np.zeros((IMAGE_SIZE, IMAGE_SIZE, 3), dtype=np.uint8)] * 16
    with caplog.at_level(logging.WARNING, logger="trainer.quantize"):
        folder = _export(Registry(tmp_path / "models"), _decisive(7), black)
    assert sorted(p.name for p in folder.iterdir()) == [CARD_NAME, ONNX_NAME]
    assert read_card(folder).int8 is None
    assert "shipping the float graph only" in caplog.text
    assert Classifier.load(folder).graph == "float"


def test_quantizing_keeps_onnxruntime_info_lines_out_of_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A channel with near-zero weights and a bias, as training leaves some: onnxruntime widens its
    # scale and says so on the root logger at INFO, a line per channel (79 for a 192 px model).
    net = _decisive(7)
    with torch.no_grad():
        net.body[3].weight[0].mul_(1e-9)
        net.body[3].bias[0] = 1.0
    export_onnx(net, out_path=tmp_path / "float.onnx", image_size=IMAGE_SIZE)
    batch = preprocess.to_batch(random_images(32, seed=9), IMAGE_SIZE)
    with caplog.at_level(logging.INFO):
        quantize(tmp_path / "float.onnx", tmp_path / "int8.onnx", batch)
        assert (tmp_path / "int8.onnx").is_file()
        assert [r.getMessage() for r in caplog.records if r.name == "root"] == []
        logging.getLogger().info("after quantizing")  # the root logger is left as it was
    assert [r.getMessage() for r in caplog.records if r.name == "root"] == ["after quantizing"]


def test_a_reader_runs_the_float_graph_when_the_int8_one_answers_otherwise_on_its_machine(
    with_int8: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # What a CPU whose int8 kernels saturate looks like to the reader: an int8 graph, matching its
    # card, that does not compute what the float graph does (here: another net's).
    folder = tmp_path / with_int8.name
    folder.mkdir()
    for path in with_int8.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    other = tmp_path / "other.onnx"
    export_onnx(TinyNet(seed=99), out_path=other, image_size=IMAGE_SIZE)
    quantize(other, folder / INT8_NAME, probe_batch(IMAGE_SIZE))
    raw = json.loads((folder / CARD_NAME).read_text())
    raw["int8"]["sha256"] = sha256_file(folder / INT8_NAME)
    (folder / CARD_NAME).write_text(json.dumps(raw))

    with caplog.at_level(logging.WARNING, logger="models.int8"):
        classifier = Classifier.load(folder)
    assert classifier.graph == "float"
    assert "answers unlike the float graph on this machine" in caplog.text
    reference = Classifier.load(with_int8, int8=False)
    images = random_images(6, seed=2)
    np.testing.assert_array_equal(classifier.infer(images)[1], reference.infer(images)[1])


def test_an_int8_graph_changed_or_missing_after_export_is_refused(with_int8: Path, tmp_path: Path) -> None:
    folder = tmp_path / with_int8.name
    folder.mkdir()
    for path in with_int8.iterdir():
        (folder / path.name).write_bytes(path.read_bytes())
    data = bytearray((folder / INT8_NAME).read_bytes())
    data[-1] ^= 0xFF
    (folder / INT8_NAME).write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model.int8.onnx does not match its card"):
        Classifier.load(folder)
    (folder / INT8_NAME).unlink()
    with pytest.raises(ModelLoadError, match=r"has no model.int8.onnx, which its card lists"):
        Classifier.load(folder)


def test_the_probe_is_the_same_drawing_like_batch_everywhere() -> None:
    a, b = probe_batch(64), probe_batch(64)
    assert a.shape == (8, 64, 64, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    # not noise: neighbouring pixels mostly agree, and the pictures differ from one another
    assert np.median(np.abs(np.diff(a.astype(int), axis=2))) < 16
    assert len({p.tobytes() for p in a}) == 8

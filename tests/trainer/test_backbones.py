"""The memory's vector from the net: the last features, and the middle ones beside them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from models import preprocess
from models.runtime import open_session
from tests.models.tiny import random_images
from trainer import backbones
from trainer.backbones import embed, features_and_embedding
from trainer.export import check_parity, export_onnx, normalize_batch

SIZE = 64
LITE0_LAST, LITE0_MIDDLE = 1280, 192  # channels of lite0's head conv and of its block 11


def lite0(middle: float) -> backbones.Classifier:
    torch.manual_seed(5)
    net = backbones.build(backbones.LITE0, 3, SIZE, pretrained=False, middle=middle).net
    return net.eval()


def batch(count: int, seed: int) -> torch.Tensor:
    return normalize_batch(preprocess.to_batch(random_images(count, seed=seed), SIZE))


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.normalize(a, dim=0) @ torch.nn.functional.normalize(b, dim=0))


def test_the_tapped_trunk_ends_where_the_plain_trunk_ends() -> None:
    net = lite0(0.25)
    x = batch(2, seed=1)
    with torch.inference_mode():
        last, middle = net.features.tapped(x)
        torch.testing.assert_close(last, net.features(x), rtol=0, atol=0)
    assert middle.shape[1] == LITE0_MIDDLE and last.shape[1] == LITE0_LAST


def test_the_middle_features_join_the_vector_at_their_weight() -> None:
    net = lite0(0.25)
    x = batch(2, seed=2)
    with torch.inference_mode():
        features, vectors = net.features_and_embedding(x)
        last, middle = net.features.tapped(x)
        torch.testing.assert_close(features, net.forward_features(x))  # the head sees what it trained on
        rooted_last = embed(torch.flatten(net.pool(last), 1))
        rooted_middle = embed(torch.flatten(net.pool(middle), 1))
    assert vectors.shape == (2, LITE0_LAST + LITE0_MIDDLE)
    np.testing.assert_allclose(vectors.norm(dim=1).numpy(), 1.0, atol=1e-5)
    expected = (
        cosine(rooted_last[0], rooted_last[1]) + 0.25 * cosine(rooted_middle[0], rooted_middle[1])
    ) / 1.25
    assert cosine(vectors[0], vectors[1]) == pytest.approx(expected, abs=1e-5)
    assert cosine(rooted_middle[0], rooted_middle[1]) != pytest.approx(
        cosine(rooted_last[0], rooted_last[1]), abs=1e-3
    )


def test_weight_zero_is_the_last_features_alone() -> None:
    net = lite0(0.0)
    x = batch(2, seed=3)
    with torch.inference_mode():
        _, vectors = net.features_and_embedding(x)
        torch.testing.assert_close(vectors, embed(net.forward_features(x)))


def test_a_trunk_without_a_middle_tap_keeps_its_last_features() -> None:
    net = backbones.build("mobilenet_v3_small", 3, SIZE, pretrained=False, middle=0.5).net.eval()
    assert net.middle == 0.0
    x = batch(2, seed=4)
    with torch.inference_mode():
        _, vectors = features_and_embedding(net, x)
        torch.testing.assert_close(vectors, embed(net.forward_features(x)))


def test_the_exported_graph_computes_the_joined_vector(tmp_path: Path) -> None:
    net = lite0(0.25)
    path = tmp_path / "model.onnx"
    export_onnx(net, out_path=path, image_size=SIZE)
    images = random_images(6, seed=6)
    prepared = preprocess.to_batch(images, SIZE)
    _, embedding = open_session(path).run(list(preprocess.OUTPUT_NAMES), {preprocess.INPUT_NAME: prepared})
    with torch.inference_mode():
        _, reference = net.features_and_embedding(normalize_batch(prepared))
    assert embedding.shape == (6, LITE0_LAST + LITE0_MIDDLE)
    np.testing.assert_allclose(embedding, reference.numpy(), atol=1e-4)
    assert check_parity(net, path, images, SIZE).embedding_max_abs_diff < 1e-4


def test_the_middle_columns_follow_the_last_features() -> None:
    assert backbones.middle_columns(lite0(0.25)) == (LITE0_LAST, LITE0_LAST + LITE0_MIDDLE)
    assert backbones.middle_columns(lite0(0.0)) is None

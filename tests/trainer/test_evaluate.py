"""The trainer's predictions on prepared pixels: one forward pass gives what two did."""

from __future__ import annotations

import numpy as np
import torch

from trainer import backbones
from trainer.dataset import Item
from trainer.evaluate import predict_embeddings, predict_logits, predict_outputs


def test_one_pass_gives_the_logits_and_the_embeddings_of_two() -> None:
    torch.manual_seed(0)
    net = backbones.build(backbones.LITE0, 3, 64, pretrained=False, middle=0.25).net
    net.train()  # predictions switch to eval mode and back
    rng = np.random.default_rng(0)
    pictures = [rng.integers(0, 256, (64, 64, 3), dtype=np.uint8) for _ in range(5)]
    items = [Item(str(i), str(i), "a", pixels=p) for i, p in enumerate(pictures)]
    cpu = torch.device("cpu")

    logits, embeddings = predict_outputs(net, pictures, device=cpu, batch_size=2)

    expected_logits = predict_logits(net, items, lambda item: item.pixels, device=cpu, batch_size=2)
    np.testing.assert_allclose(logits, expected_logits, atol=1e-5)
    np.testing.assert_allclose(embeddings, predict_embeddings(net, pictures, device=cpu), atol=1e-5)
    assert embeddings.shape == (5, 1280 + 192)
    assert net.training


def test_no_pictures_give_empty_outputs_with_the_classes() -> None:
    net = backbones.build(backbones.LITE0, 3, 64, pretrained=False).net
    logits, embeddings = predict_outputs(net, [], device=torch.device("cpu"))
    assert logits.shape == (0, 3) and embeddings.shape[0] == 0

"""Cosine head and margin losses: what they compute, and that a net with a cosine head trains."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from trainer.losses import CosineHead, MarginCrossEntropy, make_criterion, make_head


def test_cosine_head_scores_are_scaled_cosines() -> None:
    torch.manual_seed(0)
    head = CosineHead(8, 3, scale=10.0)
    x = torch.randn(5, 8)
    logits = head(x)
    assert logits.shape == (5, 3)
    assert logits.abs().max() <= 10.0 + 1e-5
    # the length of the embedding does not change the scores
    torch.testing.assert_close(head(3.0 * x), logits)


def test_zero_margin_is_plain_cross_entropy_over_the_scaled_cosines() -> None:
    torch.manual_seed(1)
    logits = 30.0 * torch.tanh(torch.randn(6, 4))
    targets = torch.tensor([0, 1, 2, 3, 0, 1])
    for kind in ("cosface", "arcface"):
        loss = MarginCrossEntropy(kind, margin=0.0, scale=30.0)(logits, targets)
        torch.testing.assert_close(loss, F.cross_entropy(logits, targets))


@pytest.mark.parametrize("kind", ["cosface", "arcface"])
def test_a_margin_raises_the_loss_of_the_same_logits(kind: str) -> None:
    torch.manual_seed(2)
    logits = 30.0 * torch.tanh(torch.randn(16, 5))
    targets = torch.randint(0, 5, (16,))
    plain = MarginCrossEntropy(kind, margin=0.0)(logits, targets)
    with_margin = MarginCrossEntropy(kind, margin=0.3)(logits, targets)
    assert with_margin > plain


def test_arcface_stays_monotonic_past_pi_minus_m() -> None:
    # a true class at 179 degrees must cost more than one at 150 degrees
    loss = MarginCrossEntropy("arcface", margin=0.5, scale=30.0)
    far = torch.tensor([[30.0 * math.cos(math.radians(179)), 0.0]])
    nearer = torch.tensor([[30.0 * math.cos(math.radians(150)), 0.0]])
    target = torch.tensor([0])
    assert loss(far, target) > loss(nearer, target)


def test_a_cosine_head_net_learns_separable_classes() -> None:
    torch.manual_seed(3)
    centres = torch.randn(3, 16) * 3
    y = torch.randint(0, 3, (300,))
    x = centres[y] + torch.randn(300, 16)
    net = torch.nn.Sequential(torch.nn.Linear(16, 16), make_head("cosface", 16, 3))
    criterion = make_criterion("cosface", weight=torch.ones(3), label_smoothing=0.0, margin=0.2)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    for _ in range(100):
        optimizer.zero_grad()
        criterion(net(x), y).backward()
        optimizer.step()
    assert (net(x).argmax(1) == y).float().mean() > 0.95


def test_unknown_loss_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown loss 'focal'"):
        make_head("focal", 4, 2)

"""Training augmentation: the low-resolution step loses detail, not colour, and only where asked."""

from __future__ import annotations

import pytest
import torch
from torchvision.transforms import v2

from trainer import augment


def _checkerboard(side: int) -> torch.Tensor:
    """1-px black and white squares: all of its content is at the finest resolution."""
    cells = (torch.arange(side)[:, None] + torch.arange(side)[None, :]) % 2
    return (cells * 255).to(torch.uint8).expand(3, side, side).contiguous()


def _fine_detail(image: torch.Tensor) -> float:
    """Mean absolute difference between horizontal neighbours: high for sharp pictures."""
    pixels = image.float()
    return float((pixels[..., 1:] - pixels[..., :-1]).abs().mean())


def test_low_resolution_removes_fine_detail_and_keeps_shape_and_colour() -> None:
    torch.manual_seed(0)
    board = _checkerboard(64)
    shrunk = augment.LowResolution()(board)
    assert shrunk.shape == board.shape and shrunk.dtype == torch.uint8
    assert _fine_detail(board) == 255.0
    assert _fine_detail(shrunk) < 40.0
    assert abs(float(shrunk.float().mean()) - 127.5) < 3.0  # the same grey on average: no colour shift


def test_low_resolution_keeps_large_shapes() -> None:
    image = torch.zeros(3, 64, 64, dtype=torch.uint8)
    image[0, :, :32] = 255  # red left half, black right half
    shrunk = augment.LowResolution(0.25, 0.25)(image)  # the most it shrinks by default
    assert torch.equal(shrunk[:, :, :24], image[:, :, :24])  # far from the edge: untouched
    assert torch.equal(shrunk[:, :, 40:], image[:, :, 40:])


def test_low_resolution_rejects_shares_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="smallest"):
        augment.LowResolution(0.0, 0.5)
    with pytest.raises(ValueError, match="smallest"):
        augment.LowResolution(0.8, 0.5)


def test_train_transform_shrinks_faces_only_when_asked() -> None:
    board = _checkerboard(48)

    def detail(low_resolution: float) -> float:
        torch.manual_seed(7)
        transform = augment.train_transform(32, low_resolution)
        return sum(_fine_detail(transform(board)) for _ in range(24)) / 24

    assert detail(1.0) < 0.5 * detail(0.0)
    # off, it draws no random number: the other steps' draws, and so a seeded run, stay as before
    assert not any(
        isinstance(step, v2.RandomApply) and isinstance(step.transforms[0], augment.LowResolution)
        for step in augment.train_transform(32, 0.0).transforms
    )
    assert "p=0.3" in augment.describe(0.3)[1]

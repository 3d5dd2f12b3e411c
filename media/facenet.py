"""The trained anime face finder: a small detector run by onnxruntime (no torch).

`namae train-faces` writes a folder with `face.onnx` and `face.json` (see `FaceNetCard`); `face_finder`
in `media.faces` uses it when it is there and falls back to the cascade otherwise. The graph takes
uint8 RGB NHWC with any height and width that are multiples of 32, and returns (N, A, 5): x0, y0,
x1, y1 in input pixels and a score in [0, 1] for every location of its three feature levels. Here the
picture is resized so that its long side is the card's `side`, padded to multiples of 32, and the
detections above the score threshold are thinned by non-maximum suppression.

Boxes follow the cascade's convention (forehead to chin, cheek to cheek), so that `crop` frames a
face the same way whichever finder found it. An onnxruntime session may be run from several
threads at once; each run uses `threads` intra-op threads (the bot's pool provides the rest).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import cv2
import numpy as np

from catalog.settings import FaceSettings
from media.boxes import Box
from media.crop import as_rgb, clamp, crop_square
from media.errors import MediaError

FACE_ONNX: Final = "face.onnx"
FACE_CARD: Final = "face.json"
STRIDE: Final = 32  # the graph's coarsest stride: inputs are padded to a multiple of it
PAD_VALUE: Final = 114
# An unsure detection overlapping a kept face this little is somewhere else: possibly a missed face.
CLEAR_IOU: Final = 0.1
# A picture one face fills (a face crop, an avatar) is looked at again in the middle of a white
# canvas this many times its long side, for a face of at least FILL_SHARE of that side centred in it.
FILL_CANVAS: Final = 2.5
FILL_SHARE: Final = 0.5
FILL_BACKDROP: Final = 255


@dataclass(frozen=True)
class FaceNetCard:
    """What `face.json` says about the detector beside it."""

    side: int  # the long side pictures are resized to
    score_threshold: float  # chosen on held-out pictures (see `metrics`)
    nms_iou: float
    onnx_sha256: str
    created: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def read(cls, folder: Path) -> FaceNetCard:
        path = folder / FACE_CARD
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                side=int(data["side"]),
                score_threshold=float(data["score_threshold"]),
                nms_iou=float(data["nms_iou"]),
                onnx_sha256=str(data["onnx_sha256"]),
                created=str(data.get("created", "")),
                metrics=dict(data.get("metrics", {})),
                sources=dict(data.get("sources", {})),
            )
        except OSError as exc:
            raise MediaError(f"The face finder card {path} cannot be read: {exc.strerror or exc}.") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise MediaError(f"The face finder card {path} is not valid: {exc}.") from exc


class NetFaceFinder:
    """Finds anime faces with the trained detector in `folder`. One instance serves any number of threads."""

    def __init__(self, folder: Path, settings: FaceSettings, *, threads: int = 1) -> None:
        import onnxruntime as ort

        folder = Path(folder)
        self.card = FaceNetCard.read(folder)
        path = folder / FACE_ONNX
        try:
            model = path.read_bytes()
        except OSError as exc:
            raise MediaError(f"The face finder {path} cannot be read: {exc.strerror or exc}.") from exc
        digest = hashlib.sha256(model).hexdigest()
        if digest != self.card.onnx_sha256:
            raise MediaError(
                f"The face finder {path} has sha256 {digest[:12]}, not the {self.card.onnx_sha256[:12]} its card names."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        try:
            self._session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad graph
            raise MediaError(f"The face finder {path} is not a valid ONNX model: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._settings = settings
        self.folder = folder
        self.threshold = settings.net_score_threshold or self.card.score_threshold
        # a first-look detection from here up to the threshold is one the finder was unsure of
        self._unsure = settings.net_second_unsure * self.threshold
        self.version = digest[:12]

    @property
    def settings(self) -> FaceSettings:
        return self._settings

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Faces in an HxWx3 uint8 RGB image, left to right."""
        return [box for box, _ in self.detect_scored(rgb)]

    def rescue(self, rgb: np.ndarray) -> list[Box]:
        """No second chance: this finder misses few faces (the cascade 17% of paperface's dev
        split, this one 3%), and its boxes under the threshold, answered under the no-face bar,
        named wrong more often than right (`python -m bench.rescue --net`, docs/face-finder.md)."""
        return []

    def fills(self, rgb: np.ndarray) -> bool:
        """Whether one face fills the picture. This finder learnt faces up to about a third of a
        picture and finds none in 46% of the dev set's tight face crops; set in the middle of a
        canvas `FILL_CANVAS` times its side, such a face is one it knows (docs/face-finder.md,
        "Pictures the face fills"). Asked only where `detect` found nothing: one more look at the
        card's side."""
        pixels = as_rgb(rgb)
        long_side = max(pixels.shape[:2])
        side = self.card.side
        scale = side / (long_side * FILL_CANVAS)
        small = _scaled(pixels, scale)
        small_h, small_w = small.shape[:2]
        top, left = (side - small_h) // 2, (side - small_w) // 2
        canvas = np.full((side, side, 3), FILL_BACKDROP, dtype=np.uint8)
        canvas[top : top + small_h, left : left + small_w] = small
        for box, _ in self._thin(self._look(canvas, side, self.threshold), self.threshold, side, side):
            centre_x, centre_y = box.x + box.w / 2 - left, box.y + box.h / 2 - top
            if (
                box.w >= FILL_SHARE * long_side * scale
                and 0 <= centre_x < small_w
                and 0 <= centre_y < small_h
            ):
                return True
        return False

    def detect_scored(
        self, rgb: np.ndarray, threshold: float | None = None, *, second_look: bool = True
    ) -> list[tuple[Box, float]]:
        """Faces with their scores, left to right (`threshold`: instead of the card's, for curves).
        The finder looks at the card's side, and again at `net_second_side` where that first look
        leaves doubt (`_looks_again`); it keeps the faces of both looks: the same face found
        twice is kept once, at its better score."""
        pixels = as_rgb(rgb)
        height, width = pixels.shape[:2]
        limit = self.threshold if threshold is None else threshold
        floor = min(limit, self.threshold)  # the second look is decided on the finder's own faces
        found = self._look(pixels, self.card.side, min(floor, self._unsure))
        faces = self._thin(found, self.threshold, width, height)
        if second_look and self._looks_again(found, faces, max(height, width)):
            found = np.concatenate([found, self._look(pixels, self._settings.net_second_side, floor)])
        elif limit == self.threshold:
            return faces
        return self._thin(found, limit, width, height)

    def _looks_again(self, found: np.ndarray, faces: list[tuple[Box, float]], long_side: int) -> bool:
        """Where the first look found no face, one under `net_second_below` of the long side (a
        group picture, where smaller faces are likelier missed), or a detection it was unsure of
        (from `net_second_unsure` of the threshold up) clear of the faces it kept: in collages of
        several posts, a face missed beside a larger one (`python -m bench.scenes`)."""
        if self._settings.net_second_side <= self.card.side:
            return False
        if not faces or min(box.w for box, _ in faces) < self._settings.net_second_below * long_side:
            return True
        unsure = found[(found[:, 4] >= self._unsure) & (found[:, 4] < self.threshold)]
        for x, y, w, h, _ in unsure:
            doubt = Box(round(x), round(y), max(1, round(w)), max(1, round(h)))
            if all(doubt.iou(box) < CLEAR_IOU for box, _ in faces):
                return True
        return False

    def _look(self, pixels: np.ndarray, side: int, limit: float) -> np.ndarray:
        """Detections scored from `limit` up, as rows of x, y, w, h (picture pixels) and score."""
        scale = side / max(pixels.shape[:2])
        small = _scaled(pixels, scale)
        new_h, new_w = small.shape[:2]
        padded_h, padded_w = -(-new_h // STRIDE) * STRIDE, -(-new_w // STRIDE) * STRIDE
        canvas = np.full((1, padded_h, padded_w, 3), PAD_VALUE, dtype=np.uint8)
        canvas[0, :new_h, :new_w] = small
        found = self._session.run(None, {self._input: canvas})[0][0]
        found = found[found[:, 4] >= limit]
        x0 = found[:, 0].clip(0, new_w)
        y0 = found[:, 1].clip(0, new_h)
        x1 = found[:, 2].clip(0, new_w)
        y1 = found[:, 3].clip(0, new_h)
        return np.stack([x0 / scale, y0 / scale, (x1 - x0) / scale, (y1 - y0) / scale, found[:, 4]], 1)

    def _thin(self, found: np.ndarray, limit: float, width: int, height: int) -> list[tuple[Box, float]]:
        """The detections scored from `limit` up, thinned by non-maximum suppression, as boxes."""
        found = found[found[:, 4] >= limit]
        if not len(found):
            return []
        keep = np.asarray(
            cv2.dnn.NMSBoxes(found[:, :4].tolist(), found[:, 4].tolist(), limit, self.card.nms_iou),
            dtype=np.int64,
        ).reshape(-1)
        out = []
        for i in keep:
            x, y, w, h = (float(v) for v in found[i, :4])
            if w < 1 or h < 1:
                continue
            box = clamp(Box(round(x), round(y), round(w), round(h)), width, height)
            out.append((box, float(found[i, 4])))
        return sorted(out, key=lambda item: (item[0].x, item[0].y))

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray:
        return crop_square(
            rgb, box, self._settings.crop_size if size is None else size, self._settings.margin
        )


def _scaled(pixels: np.ndarray, scale: float) -> np.ndarray:
    """The picture at `scale` as every look samples it: averaged over areas when shrunk, linear
    when enlarged."""
    height, width = pixels.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(pixels, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)

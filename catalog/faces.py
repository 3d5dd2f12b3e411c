"""Anime face detection (nagadomi's LBP cascade through OpenCV) and square face crops.

The cascade file is fetched once from its upstream URL with a pinned sha256 (`resolve_cascade`), or
taken from a local path. `FaceDetector` is safe to share between threads: OpenCV's
`CascadeClassifier` is not, so each thread gets its own classifier, read from the same bytes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import threading
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

import cv2
import numpy as np

from catalog.boxes import Rect, iou
from catalog.errors import CatalogError
from catalog.settings import FaceSettings

logger = logging.getLogger(__name__)

CASCADE_FILENAME: Final = "lbpcascade_animeface.xml"
# The cascade is ~250 KB; anything much larger is not it, so a download never fills the disk.
MAX_DOWNLOAD_BYTES: Final = 16 * 1024 * 1024
# Two detections are one face when they overlap this much (intersection over the smaller box).
DUPLICATE_OVERLAP: Final = 0.5


@dataclass(frozen=True)
class Box:
    """A face in pixel coordinates of the image it was found in: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def rect(self) -> Rect:
        return (self.x, self.y, self.w, self.h)

    def iou(self, other: Box) -> float:
        return iou(self.rect, other.rect)

    @property
    def area(self) -> int:
        return self.w * self.h

    def overlap(self, other: Box) -> float:
        """Intersection area over the smaller box's area (1.0 when one box contains the other)."""
        width = min(self.x + self.w, other.x + other.w) - max(self.x, other.x)
        height = min(self.y + self.h, other.y + other.h) - max(self.y, other.y)
        if width <= 0 or height <= 0:
            return 0.0
        return (width * height) / max(1, min(self.area, other.area))


class FaceDetector:
    """Finds anime faces in RGB pixels. One instance serves any number of threads."""

    def __init__(self, cascade_path: Path, settings: FaceSettings) -> None:
        path = Path(cascade_path)
        try:
            self._cascade_xml = path.read_bytes()
        except OSError as exc:
            raise CatalogError(f"The face cascade {path} cannot be read: {exc.strerror or exc}.") from exc
        self._path = path
        self._settings = settings
        self._local = threading.local()
        self._classifier()  # fail here, with the path in the message, rather than on the first image

    @property
    def settings(self) -> FaceSettings:
        return self._settings

    def _classifier(self) -> cv2.CascadeClassifier:
        classifier = getattr(self._local, "classifier", None)
        if classifier is None:
            classifier = self._load()
            self._local.classifier = classifier
        return classifier

    def _load(self) -> cv2.CascadeClassifier:
        classifier = cv2.CascadeClassifier()
        try:
            storage = cv2.FileStorage(
                self._cascade_xml.decode("utf-8", errors="replace"),
                cv2.FILE_STORAGE_READ | cv2.FILE_STORAGE_MEMORY,
            )
            loaded = storage.isOpened() and classifier.read(storage.getFirstTopLevelNode())
        except Exception as exc:  # cv2.error, or SystemError from the bindings on unparsable text
            raise CatalogError(f"The face cascade {self._path} is not a valid OpenCV cascade: {exc}") from exc
        if not loaded or classifier.empty():
            raise CatalogError(f"The face cascade {self._path} is not a valid OpenCV cascade file.")
        return classifier

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Faces in an HxWx3 uint8 RGB image, left to right, overlapping duplicates merged."""
        pixels = _as_rgb(rgb)
        height, width = pixels.shape[:2]
        scale = min(1.0, self._settings.detect_max_side / max(height, width))
        grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            grey = cv2.resize(grey, size, interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)
        min_side = max(1, round(self._settings.min_size * scale))
        found = self._classifier().detectMultiScale(
            grey,
            scaleFactor=self._settings.scale_factor,
            minNeighbors=self._settings.min_neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [
            _clamp(Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale)), width, height)
            for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4)
        ]
        return sorted(_merge_duplicates(boxes), key=lambda box: (box.x, box.y))

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray:
        """A square crop around `box`, grown by `settings.margin` on each side, resized to `size`.

        The square is shifted to stay inside the image where it fits; where it is larger than the
        image, the missing part is filled by repeating the border pixels.
        """
        pixels = _as_rgb(rgb)
        size = self._settings.crop_size if size is None else size
        if size < 1:
            raise ValueError(f"crop size must be positive, got {size}")
        if box.w <= 0 or box.h <= 0:
            raise ValueError(f"cannot crop an empty box {box}")
        height, width = pixels.shape[:2]
        side = max(1, round(max(box.w, box.h) * (1 + 2 * self._settings.margin)))
        left = _place(box.x + box.w / 2, side, width)
        top = _place(box.y + box.h / 2, side, height)
        inside = pixels[max(0, top) : min(height, top + side), max(0, left) : min(width, left + side)]
        square = cv2.copyMakeBorder(
            inside,
            max(0, -top),
            max(0, top + side - height),
            max(0, -left),
            max(0, left + side - width),
            cv2.BORDER_REPLICATE,
        )
        interpolation = cv2.INTER_AREA if side > size else cv2.INTER_LINEAR
        return np.ascontiguousarray(cv2.resize(square, (size, size), interpolation=interpolation))


def _place(centre: float, side: int, limit: int) -> int:
    """Start of a `side`-long span centred on `centre`, shifted inside [0, limit) when it fits."""
    start = round(centre - side / 2)
    if side <= limit:
        return min(max(0, start), limit - side)
    return round((limit - side) / 2)  # larger than the image: centre it, both ends get padding


def _as_rgb(rgb: np.ndarray) -> np.ndarray:
    array = np.asarray(rgb)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(f"expected an HxWx3 uint8 array, got shape {array.shape} and dtype {array.dtype}")
    return np.ascontiguousarray(array)


def _clamp(box: Box, width: int, height: int) -> Box:
    x, y = max(0, min(box.x, width - 1)), max(0, min(box.y, height - 1))
    return Box(x, y, max(1, min(box.w, width - x)), max(1, min(box.h, height - y)))


def _merge_duplicates(boxes: list[Box]) -> list[Box]:
    """Collapse detections of the same face (heavy overlap) into the larger one."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.area, reverse=True):
        if all(box.overlap(other) < DUPLICATE_OVERLAP for other in kept):
            kept.append(box)
    return kept


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_verified(url: str, sha256: str, dest: Path, *, timeout: float = 30) -> Path:
    """Download `url` to `dest` if and only if its sha256 is `sha256`; never leaves a partial file."""
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise CatalogError(f"Refusing to download {url}: only http and https URLs are allowed.")
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CatalogError(f"Cannot create {dest.parent} for the download: {exc.strerror or exc}.") from exc
    expected = sha256.strip().lower()
    request = urllib.request.Request(url, headers={"User-Agent": "namae (face cascade download)"})
    fd, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    temp = Path(temp_name)
    try:
        digest = hashlib.sha256()
        received = 0
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            while block := response.read(1 << 16):
                received += len(block)
                if received > MAX_DOWNLOAD_BYTES:
                    raise CatalogError(f"{url} sent more than {MAX_DOWNLOAD_BYTES:,} bytes; refusing it.")
                digest.update(block)
                out.write(block)
            if declared is not None and declared.isdigit() and received != int(declared):
                raise CatalogError(
                    f"Downloading {url} failed: the connection closed after {received:,} of {int(declared):,} bytes."
                )
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != expected:
            raise CatalogError(
                f"The download from {url} has sha256 {actual}, not the expected {expected}; it was discarded."
            )
        os.replace(temp, dest)
    except CatalogError:
        temp.unlink(missing_ok=True)
        raise
    except urllib.error.HTTPError as exc:
        temp.unlink(missing_ok=True)
        raise CatalogError(f"Downloading {url} failed: the server answered {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, OSError, ValueError) as exc:  # also timeouts and short reads
        temp.unlink(missing_ok=True)
        reason = getattr(exc, "reason", None) or exc
        raise CatalogError(f"Downloading {url} failed: {reason}.") from exc
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    logger.info("downloaded %s to %s (sha256 verified)", url, dest)
    return dest


def resolve_cascade(settings: FaceSettings, data_dir: Path) -> Path:
    """The cascade file to use: the configured path, else a verified copy in `data_dir`, downloaded if needed."""
    if settings.cascade_path is not None:
        path = Path(settings.cascade_path).expanduser()
        if not path.is_file():
            raise CatalogError(f"The configured face cascade {path} does not exist (faces.cascade_path).")
        actual = sha256_file(path)
        if actual != settings.cascade_sha256.lower():
            # A deliberately different cascade is allowed; say so, since results will differ.
            logger.warning(
                "face cascade %s has sha256 %s, not the pinned %s; using it as configured",
                path,
                actual,
                settings.cascade_sha256,
            )
        return path
    path = Path(data_dir) / CASCADE_FILENAME
    if path.is_file():
        if sha256_file(path) == settings.cascade_sha256.lower():
            return path
        logger.warning("face cascade %s does not match its pinned sha256; downloading it again", path)
    return download_verified(settings.cascade_url, settings.cascade_sha256, path)

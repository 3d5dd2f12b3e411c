"""Anime face finding and square face crops.

`face_finder(settings, finder_folder(settings))` is the one way the bot, the CLI, the scraper and
the trainer get a finder, so that all of them see the same faces: the trained finder
(`media.facenet`, installed by `namae train-faces` into the object store; `catalog.finder_store`
finds its local folder) when there is one, else nagadomi's LBP cascade through OpenCV (`FaceDetector`), as
`faces.finder` says. Both frame a face the same way (forehead to chin, cheek to cheek) and crop it
with the same `crop_square`. `FaceDetector` is safe to share between threads: OpenCV's
`CascadeClassifier` is not, so each thread gets its own classifier, read from the same bytes. The
cascade file itself comes from `media.cascade`.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Final, Protocol

import cv2
import numpy as np

from catalog.settings import FaceSettings
from media.boxes import Box
from media.crop import as_rgb, clamp, crop_square
from media.errors import MediaError

if TYPE_CHECKING:
    from catalog.settings import Settings

logger = logging.getLogger(__name__)

# Two detections are one face when they overlap this much (intersection over the smaller box).
DUPLICATE_OVERLAP: Final = 0.5


class FaceFinder(Protocol):
    """What the answer path needs of a face finder: boxes in a picture, and the crop of one."""

    def detect(self, rgb: np.ndarray) -> list[Box]: ...

    def rescue(self, rgb: np.ndarray) -> list[Box]:
        """Weaker candidates, for a picture where `detect` found none (see `models.answer`)."""
        ...

    def fills(self, rgb: np.ndarray) -> bool:
        """Whether one face fills a picture where `detect` found none (a face crop: answered as
        one, see `models.answer`)."""
        ...

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray: ...


def face_finder(settings: Settings, trained: Path | None, *, threads: int = 1) -> FaceFinder:
    """The face finder every path uses, as configured: the trained one in the local folder
    `trained` (what `catalog.finder_store.finder_folder` returns: the installed finder, copied out
    of the object store when it lives in a bucket) when there is one, else the cascade (fetched once
    if needed). `threads`: onnxruntime's intra-op threads per picture for the trained finder (the
    bot's pool runs pictures side by side)."""
    from media.facenet import FACE_ONNX, NetFaceFinder

    if settings.faces.finder != "cascade" and trained is not None and (trained / FACE_ONNX).is_file():
        return NetFaceFinder(trained, settings.faces, threads=threads)
    if settings.faces.finder == "trained":
        where = f"{trained} has no {FACE_ONNX}" if trained is not None else "no face finder is installed"
        raise MediaError(
            f"faces.finder is 'trained' but {where}; run `namae train-faces` "
            "(or set faces.finder to 'auto' or 'cascade')."
        )
    from media.cascade import resolve_cascade

    return FaceDetector(resolve_cascade(settings.faces, settings.data_dir, settings.download), settings.faces)


class FaceDetector:
    """Finds anime faces in RGB pixels. One instance serves any number of threads."""

    def __init__(self, cascade_path: Path, settings: FaceSettings) -> None:
        path = Path(cascade_path)
        try:
            self._cascade_xml = path.read_bytes()
        except OSError as exc:
            raise MediaError(f"The face cascade {path} cannot be read: {exc.strerror or exc}.") from exc
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
            raise MediaError(f"The face cascade {self._path} is not a valid OpenCV cascade: {exc}") from exc
        if not loaded or classifier.empty():
            raise MediaError(f"The face cascade {self._path} is not a valid OpenCV cascade file.")
        return classifier

    def detect(self, rgb: np.ndarray) -> list[Box]:
        """Faces in an HxWx3 uint8 RGB image, left to right, overlapping duplicates merged."""
        return self._detect(rgb, self._settings.min_neighbors)

    def rescue(self, rgb: np.ndarray) -> list[Box]:
        """What the cascade finds with `rescue_neighbors` neighbours instead of `min_neighbors`:
        many more false boxes, and faces drawn in styles the cascade half recognises."""
        neighbors = self._settings.rescue_neighbors
        if neighbors is None or neighbors >= self._settings.min_neighbors:
            return []
        return self._detect(rgb, neighbors)

    def fills(self, rgb: np.ndarray) -> bool:
        """Never: the cascade's way past a miss is its weaker boxes (`rescue`); a face crop it finds
        nothing in is answered from its regions, as measured with it (docs/face-finder.md, "A second
        chance")."""
        return False

    def _detect(self, rgb: np.ndarray, neighbors: int) -> list[Box]:
        pixels = as_rgb(rgb)
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
            minNeighbors=neighbors,
            minSize=(min_side, min_side),
        )
        boxes = [
            clamp(Box(round(x / scale), round(y / scale), round(w / scale), round(h / scale)), width, height)
            for x, y, w, h in np.asarray(found, dtype=np.int64).reshape(-1, 4)
        ]
        return sorted(_merge_duplicates(boxes), key=lambda box: (box.x, box.y))

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray:
        """`crop_square` with this finder's margin, at `size` (default `settings.crop_size`)."""
        return crop_square(
            rgb, box, self._settings.crop_size if size is None else size, self._settings.margin
        )


def _merge_duplicates(boxes: list[Box]) -> list[Box]:
    """Collapse detections of the same face (heavy overlap) into the larger one."""
    kept: list[Box] = []
    for box in sorted(boxes, key=lambda b: b.area, reverse=True):
        if all(box.overlap(other) < DUPLICATE_OVERLAP for other in kept):
            kept.append(box)
    return kept

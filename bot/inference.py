"""Classification off the event loop.

Decode, face detection and the ONNX model run on a small thread pool (`discord.concurrency`
workers, the global bound); each image's faces and sampled frames go through the model as one
batch. Results are cached by (sha256, model version) and identical images already in flight share
one computation. A `ModelWatcher` poll switches to a newly active model without a restart.

Memory is bounded by configuration: at most `concurrency` images are decoded at once, and at most
`2 * concurrency` downloaded images wait for a worker (see `ImageSlots`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from catalog.imaging import DecodedImage, ImageRejected, decode_image, encode_png
from catalog.settings import ImageLimits, Settings

if TYPE_CHECKING:
    from models.classifier import Classifier, FaceFinder
    from models.registry import Registry

log = logging.getLogger(__name__)


class NoModel(Exception):
    """No model is active yet: the bot answers that it cannot classify."""

    def __str__(self) -> str:
        return "No model is active yet, so I cannot identify characters. A moderator can /retrain."


@dataclass(frozen=True)
class FaceResult:
    box: tuple[int, int, int, int] | None  # x, y, w, h; None: the whole image
    candidates: list[tuple[str, float]]  # model label, calibrated probability; best first
    crop_png: bytes | None = None  # kept only on the first computation (for the catalog's Face row)

    def unknown(self, threshold: float) -> bool:
        return not self.candidates or self.candidates[0][1] < threshold


@dataclass(frozen=True)
class ImageResult:
    sha256: str
    model_version: str
    faces: list[FaceResult]
    width: int
    height: int
    format: str
    animated: bool
    cached: bool = False
    seconds: float = 0.0


def make_detector(settings: Settings) -> FaceFinder:
    """The anime-face detector (thread-safe: it keeps one OpenCV cascade per thread)."""
    from catalog.faces import FaceDetector, resolve_cascade

    return FaceDetector(resolve_cascade(settings.faces, settings.data_dir), settings.faces)


class ResultCache:
    """LRU of results by (sha256, model version); a new model version naturally misses."""

    def __init__(self, size: int) -> None:
        self.size = max(0, size)
        self._items: OrderedDict[tuple[str, str], ImageResult] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> ImageResult | None:
        item = self._items.get(key)
        if item is None:
            self.misses += 1
            return None
        self._items.move_to_end(key)
        self.hits += 1
        return item

    def put(self, key: tuple[str, str], value: ImageResult) -> None:
        if self.size == 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


class InferenceService:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        detector: FaceFinder | None = None,
        classifier: Classifier | None = None,
    ) -> None:
        bot = settings.discord
        self.settings = settings
        self.registry = registry
        self.detector = detector
        self.top_k = bot.top_k
        # Big JPEGs decode at 1/2, 1/4 or 1/8 scale, never below the detection side: detection
        # would shrink them to that anyway, and the model sees a face at 96 px. A 12 MP JPEG
        # decodes 5x faster (bench/inference.py); a 1.5 MP one 1.7x.
        self.draft_long_side = settings.faces.detect_max_side
        self.limits: ImageLimits = settings.images.model_copy(
            update={"max_bytes": min(settings.images.max_bytes, bot.max_image_bytes)}
        )
        self.concurrency = max(1, bot.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="namae-infer")
        # Downloads wait here, so that a burst of messages holds a bounded number of images.
        self.slots = asyncio.Semaphore(self.concurrency * 2)
        self.cache = ResultCache(bot.cache_size)
        self._inflight: dict[tuple[str, str], asyncio.Future[ImageResult]] = {}
        self._classifier = classifier
        self._watcher: Any = None
        self.model_changed = asyncio.Condition()
        self.timings: list[float] = []

    # -- the model ----------------------------------------------------------------------------

    @property
    def classifier(self) -> Classifier | None:
        return self._classifier

    @property
    def version(self) -> str | None:
        return self._classifier.version if self._classifier is not None else None

    def _load_kw(self) -> dict[str, Any]:
        return {"detector": self.detector, "crop_size": self.settings.faces.crop_size, "intra_op_threads": 1}

    async def start(self) -> None:
        """Load the active model (if any) and prepare the watcher; never raises for 'no model'."""
        from models.classifier import Classifier, ModelWatcher
        from models.errors import NoActiveModel

        if self._classifier is None:
            try:
                self._classifier = await self.run(Classifier.from_registry, self.registry, **self._load_kw())
            except NoActiveModel:
                log.warning("no active model in %s; classification waits for one", self.registry.root)
        self._watcher = ModelWatcher(self.registry, self._classifier, **self._load_kw())

    async def check_model(self) -> bool:
        """Switch to a newly active model. Returns True when the model changed."""
        if self._watcher is None:
            return False
        fresh = await self.run(self._watcher.check)
        if fresh is None:
            return False
        old = self.version
        self._classifier = fresh
        log.info("now classifying with model %s (was %s)", fresh.version, old)
        async with self.model_changed:
            self.model_changed.notify_all()
        return True

    async def wait_for_version(self, version: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async with self.model_changed:
                await self.model_changed.wait_for(lambda: self.version == version)

    async def watch(self, interval: float) -> None:
        """The background task: poll the registry pointer (one stat while nothing changes)."""
        while True:
            try:
                await self.check_model()
            except Exception:
                log.exception("model check failed; will try again")
            await asyncio.sleep(interval)

    # -- work ---------------------------------------------------------------------------------

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    async def classify(self, data: bytes) -> ImageResult:
        """Answer one image (raises ImageRejected for bytes that are no usable image)."""
        classifier = self._classifier
        if classifier is None:
            raise NoModel()
        if len(data) > self.limits.max_bytes:
            raise ImageRejected(
                "too_large",
                f"The file has {len(data):,} bytes, more than the limit of {self.limits.max_bytes:,}.",
            )
        sha = await asyncio.to_thread(_sha256, data) if len(data) > 1 << 20 else _sha256(data)
        key = (sha, classifier.version)
        cached = self.cache.get(key)
        if cached is not None:
            return ImageResult(**{**cached.__dict__, "cached": True, "seconds": 0.0})
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[ImageResult] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self.run(self.compute, data, sha=sha, classifier=classifier)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(result)
            self.cache.put(key, _without_crops(result))
            self.timings.append(result.seconds)
            return result
        finally:
            self._inflight.pop(key, None)

    def compute(
        self, data: bytes, *, sha: str | None = None, classifier: Classifier | None = None
    ) -> ImageResult:
        """Decode to answer, synchronously and uncached, as this service is configured (what
        `classify` runs on the pool; benchmarks call it directly as the baseline)."""
        model = classifier or self._classifier
        if model is None:
            raise NoModel()
        return answer_image(
            model, data, self.limits, top_k=self.top_k, draft_long_side=self.draft_long_side, sha=sha
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def answer_image(
    classifier: Classifier,
    data: bytes,
    limits: ImageLimits,
    *,
    top_k: int,
    draft_long_side: int | None = None,
    sha: str | None = None,
) -> ImageResult:
    """Decode to answer for one image, synchronously: what the bot computes for each attachment.
    Faces are found (and cropped) by the classifier's own detector, if it was loaded with one."""
    started = time.perf_counter()
    decoded: DecodedImage = decode_image(data, limits, draft_long_side=draft_long_side)
    answers = classifier.classify_image(
        decoded.rgb, top_k=top_k, frames=decoded.frames[1:] if decoded.animated else None
    )
    faces: list[FaceResult] = []
    # Boxes and sizes are reported in the file's pixels, whatever scale it was decoded at.
    back = 1 / decoded.scale
    for answer in answers:
        box = None
        crop = None
        if answer.box is not None:
            b = answer.box
            x, y = round(b.x * back), round(b.y * back)
            w = min(round(b.w * back), decoded.full_width - x)
            h = min(round(b.h * back), decoded.full_height - y)
            box = (x, y, w, h)
            if answer.crop is not None:
                # Level 1: a third of level 6's time for 15% more bytes, on the reply's path.
                crop = encode_png(answer.crop, compress_level=1)
        faces.append(FaceResult(box, [(c.label, float(c.probability)) for c in answer.candidates], crop))
    return ImageResult(
        sha256=sha or _sha256(data),
        model_version=classifier.version,
        faces=faces,
        width=decoded.full_width,
        height=decoded.full_height,
        format=decoded.format,
        animated=decoded.animated,
        seconds=time.perf_counter() - started,
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _without_crops(result: ImageResult) -> ImageResult:
    faces = [FaceResult(f.box, f.candidates, None) for f in result.faces]
    return ImageResult(**{**result.__dict__, "faces": faces})

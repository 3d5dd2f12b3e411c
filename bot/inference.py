"""The bot's service around the one answer path (`models.answer.answer_image`): off the event loop,
cached, bounded, hot-reloaded.

The answer path runs on a small thread pool (`discord.concurrency` workers, the global bound).
Answers are cached by (sha256, model version, memory revision and face finder) and identical
images already in flight share one computation. A `ModelWatcher` poll switches to a newly active
model without a restart; every `memory.poll_s` the faces that landed in the catalog join the model's
character memory (`models.memory_feed`), so a character labelled a minute ago is named now, and a
face finder `namae train-faces` installed in the store since the last look replaces the one in use.

Memory is bounded by configuration: at most `concurrency` images are decoded at once, and at most
`2 * concurrency` downloaded images wait for a worker (see `ImageSlots`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from catalog.finder_store import finder_folder, installed_finder
from catalog.settings import Settings
from media.decode import DecodeLimits, ImageRejected
from models.answer import Answer, answer_image

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from media.faces import FaceFinder
    from models.classifier import Classifier
    from models.memory_feed import MemoryFeed
    from models.open_world import OpenWorld
    from models.registry import Registry

log = logging.getLogger(__name__)

TIMINGS_KEPT = 1000


class NoModel(Exception):
    """No model is active yet: the bot answers that it cannot classify."""

    def __str__(self) -> str:
        return "No model is active yet, so I cannot identify characters. A moderator can /retrain."


class InferenceService:
    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        *,
        detector: FaceFinder | None = None,
        classifier: Classifier | None = None,
        engine: Engine | None = None,
    ) -> None:
        bot = settings.discord
        self.settings = settings
        self.engine = engine  # the catalog, where labelled faces for the memory land
        self._feed: MemoryFeed | None = None
        self._memory_polled = 0.0
        self.registry = registry
        self.detector = detector
        # The installed finder's version (catalog.finder_store) the detector was built from; None
        # for the cascade. Only a finder chosen from the store is watched (see `check_finder`).
        self.finder_version: str | None = None
        self.top_k = bot.top_k
        self.limits = DecodeLimits.from_settings(settings)
        # Discord attachments have a bound of their own, checked before anything is decoded.
        self.max_bytes = min(self.limits.max_bytes, bot.max_image_bytes)
        self.concurrency = max(1, bot.concurrency)
        self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="namae-infer")
        # Downloads wait here, so that a burst of messages holds a bounded number of images.
        self.slots = asyncio.Semaphore(self.concurrency * 2)
        # Answers by (sha256, model version...), least recently used out; a new model or finder misses.
        self.cache: LRUCache[tuple[str, str], Answer] = LRUCache(maxsize=max(0, bot.cache_size))
        self._inflight: dict[tuple[str, str], asyncio.Future[Answer]] = {}
        self._classifier = self._with_settings(classifier)
        self._watcher: Any = None
        self.model_changed = asyncio.Condition()
        self.timings: deque[float] = deque(maxlen=TIMINGS_KEPT)  # seconds per computed answer

    # -- the model ----------------------------------------------------------------------------

    @property
    def classifier(self) -> Classifier | None:
        return self._classifier

    @property
    def version(self) -> str | None:
        return self._classifier.version if self._classifier is not None else None

    @property
    def world(self) -> OpenWorld | None:
        """The active model's head + character memory + thresholds; None without a memory."""
        return self._classifier.world if self._classifier is not None else None

    def _with_settings(self, classifier: Classifier | None) -> Classifier | None:
        """This deployment's rule for characters known from examples only (memory.min_examples)."""
        if classifier is not None and classifier.world is not None:
            classifier.world.set_min_examples(self.settings.memory.min_examples)
        return classifier

    def _load_kw(self) -> dict[str, Any]:
        return {"intra_op_threads": 1, "int8": self.settings.registry.int8}

    async def start(self) -> None:
        """Load the active model (if any) and prepare the watcher; never raises for 'no model'."""
        from models.classifier import Classifier, ModelWatcher
        from models.errors import NoActiveModel

        if self._classifier is None:
            try:
                loaded = await self.run(Classifier.from_registry, self.registry, **self._load_kw())
                self._classifier = self._with_settings(loaded)
            except NoActiveModel:
                log.warning("no active model in %s; classification waits for one", self.registry.location)
        self._watcher = ModelWatcher(self.registry, self._classifier, **self._load_kw())
        if self._finder_watched():
            installed = await self.run(installed_finder, self.settings)
            self.finder_version = installed.version if installed is not None else None

    async def check_model(self) -> bool:
        """Switch to a newly active model. Returns True when the model changed."""
        if self._watcher is None:
            return False
        fresh = await self.run(self._watcher.check)
        if fresh is None:
            return False
        old = self.version
        self._classifier = self._with_settings(fresh)
        log.info("now classifying with model %s (was %s)", fresh.version, old)
        async with self.model_changed:
            self.model_changed.notify_all()
        return True

    async def wait_for_version(self, version: str, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            async with self.model_changed:
                await self.model_changed.wait_for(lambda: self.version == version)

    async def check_memory(self) -> int:
        """Apply the faces that landed in the catalog since the last look (models.memory_feed)."""
        classifier = self._classifier
        if classifier is None or classifier.world is None or self.engine is None:
            return 0
        from models.memory_feed import MemoryFeed

        if self._feed is None or self._feed.world is not classifier.world:
            self._feed = await self.run(MemoryFeed, self.engine, classifier.world, classifier.version)
        return await self.run(self._feed.poll)

    def _finder_watched(self) -> bool:
        """Faces are found, by the finder the store's pointer names (not the cascade by choice, nor
        a folder named in the settings)."""
        faces = self.settings.faces
        return self.detector is not None and faces.finder != "cascade" and faces.trained_dir is None

    async def check_finder(self) -> bool:
        """Switch to the face finder installed in the store since the last look (or back to the
        cascade when none is any more). Returns True when the finder changed."""
        if not self._finder_watched():
            return False
        installed = await self.run(installed_finder, self.settings)
        version = installed.version if installed is not None else None
        if version == self.finder_version:
            return False
        from media.faces import face_finder

        self.detector = await self.run(lambda: face_finder(self.settings, finder_folder(self.settings)))
        old, self.finder_version = self.finder_version, version
        log.info("now finding faces with %s (was %s)", version or "the cascade", old or "the cascade")
        return True

    async def watch(self, interval: float) -> None:
        """The background task: poll the registry pointer (one stat or HEAD while nothing changes)
        and, every `memory.poll_s`, the catalog's new memory rows and the installed face finder."""
        while True:
            try:
                changed = await self.check_model()
                now = time.monotonic()
                if changed or now - self._memory_polled >= self.settings.memory.poll_s:
                    self._memory_polled = now
                    await self.check_memory()
                    await self.check_finder()
            except Exception:
                log.exception("model, memory or face finder check failed; will try again")
            await asyncio.sleep(interval)

    # -- work ---------------------------------------------------------------------------------

    async def run(self, func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: func(*args, **kwargs))

    async def classify(self, data: bytes) -> Answer:
        """Answer one image (raises ImageRejected for bytes that are no usable image)."""
        classifier = self._classifier
        if classifier is None:
            raise NoModel()
        if len(data) > self.max_bytes:
            raise ImageRejected(
                "too_large", f"The file has {len(data):,} bytes, more than the limit of {self.max_bytes:,}."
            )
        sha = await asyncio.to_thread(_sha256, data) if len(data) > 1 << 20 else _sha256(data)
        # with the memory's revision: a face learned since must not be answered from an older entry
        detector = self.detector  # with the version in the key: a finder switch in between misses
        revision = classifier.world.revision if classifier.world else 0
        key = (sha, f"{classifier.version}#{revision}#{self.finder_version or 'cascade'}")
        cached = self.cache.get(key)
        if cached is not None:
            return replace(cached, seconds=0.0)
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            result = await self.run(self.compute, data, sha=sha, classifier=classifier, finder=detector)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        else:
            future.set_result(result)
            if self.cache.maxsize:
                self.cache[key] = result.without_pixels()
            self.timings.append(result.seconds)
            return result
        finally:
            self._inflight.pop(key, None)

    def compute(
        self,
        data: bytes,
        *,
        sha: str | None = None,
        classifier: Classifier | None = None,
        finder: FaceFinder | None = None,
    ) -> Answer:
        """The answer path, synchronously and uncached, as this service is configured (what
        `classify` runs on the pool; benchmarks call it directly as the baseline)."""
        model = classifier or self._classifier
        if model is None:
            raise NoModel()
        return answer_image(
            data,
            model=model,
            finder=finder or self.detector,
            limits=self.limits,
            top_k=self.top_k,
            sha256=sha,
        )

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()

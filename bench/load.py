"""The bot under a steady stream of pictures: how long it takes, whether gateway heartbeats stay on
time, how late its event loop wakes, and how much memory it takes, against the same bot idle.

    .venv/bin/python -m bench.load [--quick] [--results DIR] [--registry PATH] [--seed N]

Candidate: the real bot (`bot.app.NamaeBot`, face detection on, two workers, set up as in
`bench.bot`) connected to the fake Discord on 127.0.0.1, with the gateway asking for a heartbeat every second, while 20
members post 200 unique portraits at about 20 a second. Measured from the first post to the last
reply: the time, the gaps between heartbeats, the event loop's lateness (a task sleeping 10 ms at a
time and noting how late it wakes: any blocking call on the loop shows) and the process's peak RSS
over the configured bound (2 x concurrency images, each within max_image_bytes and the decoded
pixel limit, plus 150 MiB).

Baseline: the same bot, connected and idle, for as long: heartbeat gaps and loop lateness with
nothing to do. The unit suite keeps the behaviour (every picture answered, the connection kept,
memory within the bound); the time bounds are this benchmark's targets.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import numpy as np
import psutil

from bench.harness import Target, cascade_path, emit, parser, ratio, summary
from bench.stations import Pictures, make_station, registry_with_model, say
from bot.endpoints import point_discord_py_at
from sandbox.discord import FakeDiscord
from sandbox.discord.running import connected

HEARTBEAT_S = 1.0
POST_INTERVAL_S = 0.05  # about 20 pictures a second
MEMBERS = 20
DEADLINE_S = 60.0
LAG_TARGET_MS = 100.0
FULL, QUICK = 200, 12


class LoopLag:
    """How late `asyncio.sleep(interval)` wakes, sample by sample: blocking calls show as lag."""

    def __init__(self, interval: float = 0.01) -> None:
        self.interval = interval
        self.lags_ms: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags_ms.append((time.perf_counter() - started - self.interval) * 1000)

    def __enter__(self) -> Self:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()


@dataclass
class Window:
    """One stretch of time: idle (the baseline) or under the stream (the candidate)."""

    seconds: float
    heartbeats: list[float]  # when each arrived (time.monotonic)
    lags_ms: list[float]
    peak_rss: int = 0
    answered: int = 0

    @property
    def heartbeat_gap_max(self) -> float:
        """The longest gap between two heartbeats in the window."""
        return max(np.diff(self.heartbeats), default=0.0) if len(self.heartbeats) > 1 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 2),
            "answered": self.answered,
            "heartbeats": len(self.heartbeats),
            "heartbeat_gap_max_s": round(float(self.heartbeat_gap_max), 3),
            "loop_lag": summary(self.lags_ms or [0.0], 2) | {"max_ms": round(max(self.lags_ms or [0.0]), 2)},
        }


def _beats(fake: FakeDiscord, since: int) -> list[float]:
    return [beat.at for beat in fake.heartbeats[since:]]


async def _idle(fake: FakeDiscord, seconds: float) -> Window:
    since = len(fake.heartbeats)
    started = time.perf_counter()
    with LoopLag() as lag:
        await asyncio.sleep(seconds)
    return Window(time.perf_counter() - started, _beats(fake, since), lag.lags_ms)


async def _stream(fake: FakeDiscord, channel: int, members: list[int], pictures: list[bytes]) -> Window:
    process = psutil.Process()
    peak = process.memory_info().rss

    async def sample_rss() -> None:
        nonlocal peak
        while True:
            peak = max(peak, process.memory_info().rss)
            await asyncio.sleep(0.05)

    since = len(fake.heartbeats)
    sampler = asyncio.create_task(sample_rss())
    started = time.perf_counter()
    with LoopLag() as lag:
        posted = []
        for i, data in enumerate(pictures):
            posted.append(
                await fake.post_message(
                    channel, members[i % len(members)], "", attachments=[(f"l{i}.jpg", data, "image/jpeg")]
                )
            )
            await asyncio.sleep(POST_INTERVAL_S)
        replies = await asyncio.gather(
            *(fake.wait_for_message(reply_to=mid, timeout=DEADLINE_S * 4) for mid in posted)
        )
    seconds = time.perf_counter() - started
    sampler.cancel()
    window = Window(seconds, _beats(fake, since), lag.lags_ms, peak_rss=peak)
    window.answered = sum("**Image**" in reply.text() for reply in replies)
    return window


async def _measure(registry_root: Path, count: int, seed: int, tmp: Path) -> dict[str, Any]:
    fake = FakeDiscord(heartbeat_interval_ms=int(HEARTBEAT_S * 1000))
    await fake.start()
    target = point_discord_py_at(fake.api_base, fake.gateway_url)
    try:
        guild = fake.add_guild("bench")
        members = [guild.add_member(f"load{i}") for i in range(MEMBERS)]
        station = make_station("faces", tmp / "faces", cascade_path(), registry_root, guild)
        pictures = Pictures(seed).take(count)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(connected(station.bot, fake, timeout=60))
            say("bot connected")
            baseline_rss = psutil.Process().memory_info().rss
            loaded = await _stream(fake, station.channel, members, pictures)
            say(f"{count} pictures answered in {loaded.seconds:.1f} s")
            idle = await _idle(fake, loaded.seconds)
            say("idle window measured")
        settings = station.bot.settings
        per_image = settings.discord.max_image_bytes + 3 * min(settings.images.max_pixels, 4096 * 4096) * 2
        bound = 2 * settings.discord.concurrency * per_image + 150 * 1024 * 1024
        return {
            "loaded": loaded,
            "idle": idle,
            "rss_growth_mib": round((loaded.peak_rss - baseline_rss) / 2**20, 1),
            "rss_bound_mib": round(bound / 2**20, 1),
            "pictures": count,
        }
    finally:
        target.restore()
        await fake.stop()


def main() -> None:
    started = time.perf_counter()
    args_parser = parser(__doc__)
    args_parser.add_argument("--registry", type=Path, default=None, help="a registry with an active version")
    args = args_parser.parse_args()
    count = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="namae-bench-load-") as name:
        tmp = Path(name)
        registry_root, model = registry_with_model(args.registry, tmp)
        measured = asyncio.run(_measure(registry_root, count, args.seed, tmp))
    loaded, idle = measured["loaded"], measured["idle"]
    heartbeat_gap = float(loaded.heartbeat_gap_max)
    lag_max = max(loaded.lags_ms or [0.0])
    results = {
        "under_load": loaded.as_dict(),
        "idle": idle.as_dict(),
        "memory": {"rss_growth_mib": measured["rss_growth_mib"], "bound_mib": measured["rss_bound_mib"]},
        "stream": {"pictures": count, "members": MEMBERS, "post_interval_s": POST_INTERVAL_S},
        "model": model,
    }
    ratios = {
        "loop_lag_p99_loaded_over_idle": ratio(
            max(summary(loaded.lags_ms or [0.01])["p99_ms"], 0.01),
            max(summary(idle.lags_ms or [0.01])["p99_ms"], 0.01),
        ),
        "heartbeat_gap_max_loaded_over_idle": ratio(
            max(heartbeat_gap, 0.001), max(float(idle.heartbeat_gap_max), 0.001)
        ),
    }
    targets = [
        Target(f"{count} pictures answered", count, loaded.answered, "pictures", lower_is_better=False),
        Target(
            f"{count} pictures at 20/s, first post to last reply",
            DEADLINE_S * count / FULL,
            loaded.seconds,
            "s",
        ),
        Target("longest gap between heartbeats (asked every 1 s)", HEARTBEAT_S * 1.5, heartbeat_gap, "s"),
        Target("longest event-loop stall under load", LAG_TARGET_MS, lag_max, "ms"),
        Target("peak RSS growth", measured["rss_bound_mib"], measured["rss_growth_mib"], "MiB"),
    ]
    payload = {
        "baseline": "the same bot connected and idle for as long: heartbeat gaps and event-loop lateness",
        "candidate": (
            "NamaeBot on real discord.py (faces on, 2 workers) while 20 members post unique portraits at "
            "about 20 a second through the fake Discord"
        ),
        "results": results,
        "ratios": ratios,
        "targets": [t.as_dict() for t in targets],
    }
    emit("load", payload, args, started)


if __name__ == "__main__":
    main()

"""Every hostile file through `decode_image`: the expected outcome, in bounded time and memory.

Time is this process's CPU time (`time.process_time`): the decoder's own work, which other processes
on a busy machine do not inflate (wall-clock figures belong to bench/). Memory is measured where all of it shows:
Pillow's pixel buffers come from C `malloc`, which `tracemalloc` never sees, so a fresh single-threaded
interpreter forks once per case and the forked child reports how far decoding raised its peak
resident set (`ru_maxrss`) above where it started. `tracemalloc`'s peak (Python and numpy
allocations) is reported beside it.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile, PngImagePlugin

from catalog.settings import ImageLimits
from media.decode import DecodedImage, ImageRejected, decode_image
from media.encode import encode_png
from tests.hostile_files import EXPECTED, HOSTILE_CASES, pattern

CPU_LIMIT_S = 2.0
# Peak resident memory a single hostile case may add while decoding, under default ImageLimits.
# The largest accepted file in the corpus is 128x96; bombs must be refused before any pixel buffer.
RSS_LIMIT_MB = 48.0
BOMB_RSS_LIMIT_MB = 8.0
REPO = Path(__file__).resolve().parents[2]


CONTROL = "control_3000x3000"


def _outcome(data: bytes, limits: ImageLimits) -> tuple[str | None, DecodedImage | None]:
    try:
        decoded = decode_image(data, limits)
    except ImageRejected as exc:
        assert exc.detail and str(exc) == exc.detail
        return exc.reason, None
    return None, decoded


@pytest.mark.parametrize("name", sorted(HOSTILE_CASES))
def test_hostile_case_outcome_and_time(name: str) -> None:
    data = HOSTILE_CASES[name]()
    started = time.process_time()
    reason, decoded = _outcome(data, ImageLimits())
    cpu = time.process_time() - started
    assert reason == EXPECTED[name], f"{name}: got {reason!r}, expected {EXPECTED[name]!r}"
    assert cpu < CPU_LIMIT_S, f"{name} took {cpu:.2f} s of CPU"
    if decoded is not None:
        assert decoded.rgb.dtype.name == "uint8" and decoded.rgb.ndim == 3 and decoded.rgb.shape[2] == 3
        assert decoded.rgb.shape[:2] == (decoded.height, decoded.width)
        assert decoded.frames[0] is decoded.rgb
        assert all(frame.shape == decoded.rgb.shape for frame in decoded.frames)


def test_corpus_is_deterministic() -> None:
    for name, make in HOSTILE_CASES.items():
        assert make() == make(), name


def test_pillow_global_state_is_left_alone() -> None:
    before = (
        Image.MAX_IMAGE_PIXELS,
        ImageFile.LOAD_TRUNCATED_IMAGES,
        PngImagePlugin.MAX_TEXT_CHUNK,
        PngImagePlugin.MAX_TEXT_MEMORY,
    )
    for make in HOSTILE_CASES.values():
        _outcome(make(), ImageLimits())
    after = (
        Image.MAX_IMAGE_PIXELS,
        ImageFile.LOAD_TRUNCATED_IMAGES,
        PngImagePlugin.MAX_TEXT_CHUNK,
        PngImagePlugin.MAX_TEXT_MEMORY,
    )
    assert after == before
    assert after[1] is False


def test_python_side_peak_memory_of_the_metadata_cases_is_small() -> None:
    """The PNGs with 50 MB text chunks decode without ever holding their text (tracemalloc view)."""
    for name in ("png_huge_ztxt", "png_many_chunks"):
        data = HOSTILE_CASES[name]()
        tracemalloc.start()
        try:
            decode_image(data, ImageLimits())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 4 * len(data) + (2 << 20), f"{name}: Python peak {peak / 2**20:.1f} MB"


def _measure_each_case_in_a_fork() -> dict[str, dict[str, object]]:
    """Runs in a fresh interpreter (see `__main__` below): one fork per case, peak RSS from wait4."""
    Image.init()
    decode_image(HOSTILE_CASES["valid_png"](), ImageLimits())  # plugins and numpy paths warmed up
    cases = {name: make() for name, make in HOSTILE_CASES.items()}
    # A control that must show up: a real 3000x3000 picture (27 MB as RGB) proves the probe sees C memory.
    cases[CONTROL] = encode_png(np.tile(pattern(100, 100, seed=1), (30, 30, 1)))
    results: dict[str, dict[str, object]] = {}
    for name, data in cases.items():
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child decodes one case and reports through the pipe
            os.close(read_end)
            start_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            # Timed and measured untraced: tracemalloc slows every Python allocation several
            # times over (a long animation's per-frame bookkeeping most of all). CPU time, which a
            # busy machine does not inflate.
            started = time.process_time()
            reason, _ = _outcome(data, ImageLimits())
            elapsed = time.process_time() - started
            peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            tracemalloc.start()
            _outcome(data, ImageLimits())
            _, traced = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            report = {
                "reason": reason,
                "cpu_seconds": round(elapsed, 4),
                "rss_delta_mb": round((peak_kb - start_kb) / 1024, 2),
                "traced_peak_mb": round(traced / 2**20, 2),
                "bytes": len(data),
            }
            with os.fdopen(write_end, "w") as pipe:
                pipe.write(json.dumps(report))
            os._exit(0)
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            text = pipe.read()
        _, status, _ = os.wait4(pid, 0)
        results[name] = json.loads(text) if text else {"crashed_status": status}
    return results


@pytest.fixture(scope="module")
def memory_report() -> dict[str, dict[str, object]]:
    completed = subprocess.run(
        [sys.executable, "-m", "tests.security.test_hostile_decode"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return json.loads(completed.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(HOSTILE_CASES))
def test_hostile_case_bounded_memory(name: str, memory_report: dict[str, dict[str, object]]) -> None:
    report = memory_report[name]
    assert "crashed_status" not in report, f"{name}: the decoding process died ({report})"
    assert report["reason"] == EXPECTED[name]
    assert report["cpu_seconds"] < CPU_LIMIT_S
    limit = BOMB_RSS_LIMIT_MB if EXPECTED[name] == "decompression_bomb" else RSS_LIMIT_MB
    assert report["rss_delta_mb"] < limit, f"{name}: peak RSS grew by {report['rss_delta_mb']} MB"


def test_memory_probe_sees_pixel_buffers(memory_report: dict[str, dict[str, object]]) -> None:
    control = memory_report[CONTROL]
    assert control["reason"] is None
    assert control["rss_delta_mb"] > 20, control  # 27 MB of RGB, plus Pillow's own copy


if __name__ == "__main__":
    print(json.dumps(_measure_each_case_in_a_fork()))

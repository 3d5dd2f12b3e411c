"""Decode throughput: plain Pillow beside `catalog.imaging.decode_image`, in the same run.

    .venv/bin/python -m bench.decode [--repeats 7] [--seconds 0.3]

Prints JSON: for each typical file, images/s for the baseline (`Image.open(...).convert("RGB")` and
`np.asarray`, which is what every caller needs) and for the safe decoder (sniffing, limits, metadata
stripping, EXIF orientation, greyscale scoring off by default), the median over repeats, and the ratio
safe / baseline.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np
import PIL
from PIL import Image

from catalog.imaging import decode_image
from catalog.settings import ImageLimits


def _picture(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth colour fields with edges and mild noise: compresses like an illustration, not like noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    channels = [
        127 + 110 * np.sin(rng.uniform(0.005, 0.03) * x + rng.uniform(0.005, 0.03) * y + rng.uniform(0, 6))
        for _ in range(3)
    ]
    pixels = np.stack(channels, axis=2)
    for _ in range(12):  # flat shapes with hard edges, like cel shading
        top, left = int(rng.integers(0, height - 40)), int(rng.integers(0, width - 40))
        pixels[
            top : top + int(rng.integers(20, height // 3)), left : left + int(rng.integers(20, width // 3))
        ] = rng.uniform(0, 255, 3)
    pixels += rng.normal(0, 3, pixels.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, fmt: str) -> bytes:
    buffer = io.BytesIO()
    params = {"quality": 90} if fmt == "JPEG" else {}
    Image.fromarray(pixels).save(buffer, fmt, **params)
    return buffer.getvalue()


def _baseline(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _rate(decode: Callable[[bytes], object], data: bytes, seconds: float) -> float:
    """Images per second over one timed round of at least `seconds`."""
    count, started = 0, time.perf_counter()
    while True:
        decode(data)
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed rounds per file and decoder")
    parser.add_argument("--seconds", type=float, default=0.3, help="minimum length of one round")
    args = parser.parse_args()

    limits = ImageLimits()
    files = {
        "jpeg_512x512": ((512, 512), "JPEG"),
        "jpeg_1280x720": ((720, 1280), "JPEG"),
        "jpeg_1920x1080": ((1080, 1920), "JPEG"),
        "png_512x512": ((512, 512), "PNG"),
        "png_1280x720": ((720, 1280), "PNG"),
    }
    results = {}
    for seed, (name, ((height, width), fmt)) in enumerate(files.items()):
        data = _encode(_picture(height, width, seed), fmt)
        assert np.array_equal(_baseline(data), decode_image(data, limits).rgb)
        decoders: dict[str, Callable[[bytes], object]] = {
            "baseline": _baseline,
            "safe": lambda blob: decode_image(blob, limits),
        }
        rates: dict[str, list[float]] = {key: [] for key in decoders}
        _rate(decoders["baseline"], data, 0.05)  # warm-up
        for _ in range(args.repeats):
            for key, decode in decoders.items():  # interleaved, so drift hits both alike
                rates[key].append(_rate(decode, data, args.seconds))
        baseline, safe = statistics.median(rates["baseline"]), statistics.median(rates["safe"])
        results[name] = {
            "bytes": len(data),
            "baseline_images_per_s": round(baseline, 1),
            "safe_images_per_s": round(safe, 1),
            "ratio_safe_over_baseline": round(safe / baseline, 3),
        }
    print(
        json.dumps(
            {
                "benchmark": "decode",
                "python": platform.python_version(),
                "pillow": PIL.__version__,
                "machine": platform.machine(),
                "repeats": args.repeats,
                "statistic": "median of rounds",
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

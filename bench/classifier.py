"""Classifier latency: onnxruntime (the bot's path) vs torch eager of the same net, in one run.

    .venv/bin/python bench/classifier.py [--batch-sizes 1,8,32] [--repeats 30] [--threads 2]

Builds the trainer's default backbone (efficientnet-lite0, ImageNet weights when installed),
exports it through the real export path into a throwaway registry (parity included), and times a
prepared uint8 batch per batch size: onnxruntime session.run vs torch inference_mode forward with
the same normalization. Also times Classifier.predict_batch on raw images (preprocessing included).
Prints one JSON document; ratios are torch / onnxruntime (above 1: onnxruntime faster).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from models import preprocess
from models.classifier import Classifier
from models.registry import Registry
from trainer.backbones import LITE0, build
from trainer.export import export_version, normalize_batch


def timings(fn: Callable[[], object], repeats: int, warmup: int = 3) -> dict[str, float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return {
        "median_ms": round(statistics.median(samples), 3),
        "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=LITE0)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--classes", type=int, default=20)
    parser.add_argument("--batch-sizes", default="1,8,32")
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2, help="torch and onnxruntime intra-op threads")
    parser.add_argument("--parity-images", type=int, default=64)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    built = build(args.backbone, args.classes, args.image_size, pretrained=True, allow_download=False)
    net = built.net.to("cpu").eval()
    labels = [f"character {i:02d}" for i in range(args.classes)]
    raw = [rng.integers(0, 256, (int(rng.integers(80, 400)), int(rng.integers(80, 400)), 3), dtype=np.uint8)
           for _ in range(max(args.parity_images, 64))]  # fmt: skip

    with tempfile.TemporaryDirectory() as tmp:
        registry = Registry(Path(tmp) / "models")
        start = time.perf_counter()
        version, parity = export_version(
            net,
            registry=registry,
            labels=labels,
            image_size=args.image_size,
            temperature=1.0,
            thresholds=0.5,
            metrics={"test_macro_f1": 0.0},
            dataset_fingerprint="bench",
            val_images=raw[: args.parity_images],
            backbone=args.backbone,
        )
        export_s = time.perf_counter() - start
        classifier = Classifier.load(registry.version_dir(version), intra_op_threads=args.threads)
        onnx_mb = (registry.version_dir(version) / "model.onnx").stat().st_size / 1e6

        results = []
        for batch in (int(b) for b in args.batch_sizes.split(",")):
            images = [raw[i % len(raw)] for i in range(batch)]
            prepared = preprocess.to_batch(images, args.image_size)
            feed = {preprocess.INPUT_NAME: prepared}

            def run_ort(feed: dict[str, np.ndarray] = feed) -> object:
                return classifier.session.run(None, feed)

            def run_torch(prepared: np.ndarray = prepared) -> object:
                with torch.inference_mode():
                    return net(normalize_batch(prepared))

            def run_end_to_end(images: list[np.ndarray] = images) -> object:
                return classifier.predict_batch(images)

            ort_t = timings(run_ort, args.repeats)
            torch_t = timings(run_torch, args.repeats)
            e2e_t = timings(run_end_to_end, args.repeats)
            results.append(
                {
                    "batch": batch,
                    "onnxruntime": ort_t,
                    "torch_eager": torch_t,
                    "classifier_predict_batch": e2e_t,
                    "torch_over_onnxruntime_median": round(torch_t["median_ms"] / ort_t["median_ms"], 2),
                    "onnxruntime_per_image_ms": round(ort_t["median_ms"] / batch, 3),
                }
            )

    print(
        json.dumps(
            {
                "bench": "classifier",
                "backbone": args.backbone,
                "weights": built.weights_source,
                "image_size": args.image_size,
                "classes": args.classes,
                "threads": args.threads,
                "repeats": args.repeats,
                "provider": classifier.provider,
                "machine": platform.processor() or platform.machine(),
                "torch": torch.__version__,
                "export_seconds": round(export_s, 2),
                "onnx_mb": round(onnx_mb, 2),
                "parity": parity.as_dict(),
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()

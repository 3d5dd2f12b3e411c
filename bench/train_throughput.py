"""Training throughput, and the done-when quality run.

    nice .venv/bin/python bench/train_throughput.py throughput [--backbones ...] [--image-size 64]
    nice .venv/bin/python bench/train_throughput.py quality [--characters 12] [--images 40]
        [--image-size 64] [--epochs 6] [--backbone efficientnet_lite0]

throughput: training images per second (forward + backward + AdamW step, batch `--batch-size`,
augmentation excluded) per backbone, measured round-robin so that other load on the machine falls
on all alike; the baseline is mobilenet_v3_small.

quality: the acceptance run. Draws `--characters` synthetic characters, then trains through the
same `train_run` the CLI calls (folder dataset with face crops, leak-free split, frozen test set,
calibration, ONNX export with parity into a throwaway registry) on the CPU, and reports the test
macro-F1 on the frozen test set, ECE before/after temperature scaling, backbone, image size and
wall-clock seconds. Prints one JSON document.
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

from bench.backbones import CASCADE, draw_characters
from catalog.settings import Settings
from trainer.backbones import DEFAULT_BACKBONE, build

BASELINE = "mobilenet_v3_small"


def throughput(args: argparse.Namespace) -> dict:
    names = [n for n in args.backbones.split(",") if n]
    if BASELINE not in names:
        names.insert(0, BASELINE)
    nets, optimizers = {}, {}
    for name in names:
        net = build(name, 10, args.image_size).net.train()
        nets[name] = net
        optimizers[name] = torch.optim.AdamW(net.parameters(), lr=1e-3)
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size)
    y = torch.randint(0, 10, (args.batch_size,))
    samples: dict[str, list[float]] = {name: [] for name in names}
    for step in range(args.steps + 2):
        for name, net in nets.items():
            start = time.perf_counter()
            loss = torch.nn.functional.cross_entropy(net(x), y)
            optimizers[name].zero_grad()
            loss.backward()
            optimizers[name].step()
            if step >= 2:  # warm-up steps are not counted
                samples[name].append(time.perf_counter() - start)
    base = statistics.median(samples[BASELINE])
    return {
        name: {
            "images_per_s": round(args.batch_size / statistics.median(values), 1),
            "median_step_ms": round(1000 * statistics.median(values), 1),
            "step_time_vs_baseline": round(statistics.median(values) / base, 3),
        }
        for name, values in samples.items()
    }


def quality(args: argparse.Namespace) -> dict:
    from trainer.run import train_run

    with tempfile.TemporaryDirectory(prefix="namae-quality-") as tmp:
        root = Path(tmp)
        drawn = time.perf_counter()
        names = draw_characters(root / "set", args.characters, args.images, args.seed, args.near_duplicates)
        drawn = time.perf_counter() - drawn
        settings = Settings(
            data_dir=root / "data",
            faces={"cascade_path": CASCADE},
            train={
                "backbone": args.backbone,
                "epochs": args.epochs,
                "image_size": args.image_size,
                "batch_size": args.batch_size,
                "device": "cpu",
                "seed": args.seed,
            },
            _env_file=None,
        )
        start = time.perf_counter()
        result = train_run(settings, None, from_folder=root / "set", progress=False, register=True)
        seconds = time.perf_counter() - start
        report = json.loads(result.report_path.read_text())
    return {
        "characters": len(names),
        "images_per_character": args.images,
        "near_duplicates": args.near_duplicates,
        "drawing_s": round(drawn, 1),
        "train_run_s": round(seconds, 1),
        "under_5_minutes": seconds < 300,
        "backbone": result.metrics["backbone"],
        "pretrained": result.metrics["pretrained"],
        "image_size": result.metrics["image_size"],
        "epochs_run": len(report["history"]["epochs"]),
        "test_images": result.metrics["test_images"],
        "test_macro_f1": round(result.metrics["test_macro_f1"], 4),
        "test_accuracy": round(result.metrics["test_accuracy"], 4),
        "val_macro_f1": round(result.metrics["val_macro_f1"], 4),
        "ece_before": round(result.metrics["ece_before"], 4),
        "ece_after": round(result.metrics["ece_after"], 4),
        "temperature": round(result.metrics["temperature"], 3),
        "threshold": round(result.metrics["threshold"], 3),
        "version": result.version,
        "dataset": report["dataset"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    tp = sub.add_parser("throughput")
    tp.add_argument("--backbones", default=f"{DEFAULT_BACKBONE},mobilenet_v3_large,efficientnet_b0,resnet18")
    tp.add_argument("--image-size", type=int, default=64)
    tp.add_argument("--batch-size", type=int, default=32)
    tp.add_argument("--steps", type=int, default=10)
    q = sub.add_parser("quality")
    q.add_argument("--backbone", default=DEFAULT_BACKBONE)
    q.add_argument("--characters", type=int, default=12)
    q.add_argument("--images", type=int, default=40)
    q.add_argument("--image-size", type=int, default=64)
    q.add_argument("--epochs", type=int, default=6)
    q.add_argument("--batch-size", type=int, default=32)
    q.add_argument("--seed", type=int, default=1234)
    q.add_argument("--near-duplicates", type=int, default=0, help="reposts mixed into the classes")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("onnxscript", "onnx_ir", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    out = throughput(args) if args.mode == "throughput" else quality(args)
    machine = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    print(
        json.dumps(
            {"bench": f"train_{args.mode}", "config": vars(args), "machine": machine, "results": out},
            indent=1,
            default=str,
        )
    )


if __name__ == "__main__":
    main()

"""How learnable are the synthetic characters? Train a small CNN on CPU for a fixed time budget and
print JSON: held-out accuracy beside the chance and majority-class baselines, and the seconds spent.

    .venv/bin/python bench/synth_learnability.py --characters 10 --images 60 --size 64 --seconds 60
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from sandbox.characters import SynthManifest, generate_dataset


def small_cnn(classes: int) -> nn.Module:
    def block(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2)
        )

    return nn.Sequential(
        block(3, 16), block(16, 32), block(32, 64), block(64, 96),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(96, classes),
    )  # fmt: skip


def load(manifest: SynthManifest, size: int) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Images and labels per split hint ("train" vs everything held out)."""
    index = {spec.slug: i for i, spec in enumerate(manifest.characters)}
    xs: dict[str, list[np.ndarray]] = {"train": [], "test": []}
    ys: dict[str, list[int]] = {"train": [], "test": []}
    for entry in manifest.images:
        with Image.open(manifest.path(entry["path"])) as image:
            pixels = np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        split = "train" if entry["split"] == "train" else "test"
        xs[split].append(pixels)
        ys[split].append(index[entry["character"]])
    images = {k: torch.from_numpy(np.stack(v)).permute(0, 3, 1, 2).float().div(255) for k, v in xs.items()}
    labels = {k: torch.tensor(v) for k, v in ys.items()}
    return images, labels


def accuracy_of(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    model.eval()
    with torch.no_grad():
        correct = float((model(images).argmax(1) == labels).float().mean())
    model.train()
    return correct


def train(
    data: tuple[torch.Tensor, torch.Tensor],
    held_out: tuple[torch.Tensor, torch.Tensor],
    classes: int,
    seconds: float,
    seed: int,
) -> tuple[nn.Module, list[tuple[float, float]]]:
    """Train for `seconds`; returns the model and (seconds, held-out accuracy) after every epoch
    (evaluation time not counted)."""
    images, labels = data
    torch.manual_seed(seed)
    model = small_cnn(classes)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    generator = torch.Generator().manual_seed(seed)
    curve: list[tuple[float, float]] = []
    spent = 0.0
    model.train()
    while spent < seconds:
        started = time.perf_counter()
        for batch in torch.randperm(len(images), generator=generator).split(32):
            x = images[batch]
            flip = torch.rand(len(x), generator=generator) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
            optimizer.zero_grad()
            loss_fn(model(x), labels[batch]).backward()
            optimizer.step()
        spent += time.perf_counter() - started
        curve.append((round(spent, 1), round(accuracy_of(model, *held_out), 4)))
    return model, curve


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--characters", type=int, default=10)
    parser.add_argument("--images", type=int, default=60)
    parser.add_argument("--size", type=int, default=64, help="network input side")
    parser.add_argument("--render-size", type=int, default=96, help="side of the generated portraits")
    parser.add_argument("--seconds", type=float, default=60.0, help="training time budget")
    parser.add_argument("--threads", type=int, default=1, help="a net this small gains nothing from more")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        manifest = generate_dataset(
            Path(tmp) / "synth",
            characters=args.characters,
            images=args.images,
            seed=args.seed,
            size=args.render_size,
        )
        generated = time.perf_counter() - started
        images, labels = load(manifest, args.size)
    model, curve = train(
        (images["train"], labels["train"]),
        (images["test"], labels["test"]),
        args.characters,
        args.seconds,
        args.seed,
    )
    accuracy = accuracy_of(model, images["test"], labels["test"])
    counts = torch.bincount(labels["train"], minlength=args.characters)
    majority = float((labels["test"] == counts.argmax()).float().mean())
    to_90 = next((seconds for seconds, acc in curve if acc >= 0.9), None)
    print(json.dumps({
        "candidate": {"model": "small_cnn", "accuracy": round(accuracy, 4)},
        "baselines": {"chance": round(1 / args.characters, 4), "majority_class": round(majority, 4)},
        "ratio_to_chance": round(accuracy * args.characters, 2),
        "train_seconds": curve[-1][0],
        "seconds_to_90_percent": to_90,
        "generate_seconds": round(generated, 1),
        "epochs": len(curve),
        "curve_seconds_accuracy": curve,
        "train_images": len(labels["train"]),
        "test_images": len(labels["test"]),
        "config": vars(args),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()

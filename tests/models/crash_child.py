"""A registry writer that stops at a named step and waits to be killed (the crash tests' child).

    python -m tests.models.crash_child ROOT MODE STEP [ARG]

MODE is export (a real torch export; needs torch), register (stages a copy of the ONNX file
given as ARG: torch-free), promote ARG (a version) or rollback. When the registry reaches STEP the child prints the step's
name on stdout (as `STEP name`) and blocks on stdin; the parent then sends SIGKILL. Reaching the end without
meeting STEP prints "STEP finished".
"""

from __future__ import annotations

import sys
from pathlib import Path

from models.registry import Registry


def main() -> None:
    root, mode, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]

    def on_step(name: str) -> None:
        if name == target:
            print(f"STEP {name}", flush=True)
            sys.stdin.readline()  # the parent kills us while we wait here

    registry = Registry(root, on_step=on_step)
    if mode == "export":
        from tests.models.tiny import IMAGE_SIZE, LABELS, TinyNet, random_images
        from trainer.export import export_version

        export_version(
            TinyNet(seed=7),
            registry=registry,
            labels=LABELS,
            image_size=IMAGE_SIZE,
            temperature=1.0,
            thresholds=0.5,
            metrics={"test_macro_f1": 0.99},
            dataset_fingerprint="crash-test",
            val_images=random_images(8, seed=1),
            backbone="tiny",
        )
    elif mode == "register":
        from tests.models.helpers import stage_version

        stage_version(registry, Path(sys.argv[4]), f1=0.99)
    elif mode == "promote":
        registry.promote(sys.argv[4], force=True)
    elif mode == "rollback":
        registry.rollback()
    else:
        raise SystemExit(f"unknown mode {mode}")
    print("STEP finished", flush=True)


if __name__ == "__main__":
    main()

"""`python -m trainer`: the training entry for torchrun (and a plain single process).

    torchrun --nproc_per_node 4 -m trainer --device cuda
    torchrun --nproc_per_node 2 -m trainer --device cpu --from-folder DIR   # gloo on CPUs

Configuration comes from the usual `Settings` sources (NAMAE_* variables, namae.toml, .env); the
flags override the training section. Rank 0 writes the run folder and registers the candidate;
promotion is left to `namae model promote` or the worker. Exit status 1 with one sentence on
stderr for errors a person can fix (bad dataset, corrupt checkpoint).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from catalog.errors import CatalogError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    data = parser.add_argument_group("data")
    data.add_argument(
        "--from-folder", type=Path, help="train from DIR/<character>/*.jpg instead of the catalog"
    )
    model = parser.add_argument_group("model and schedule")
    model.add_argument("--backbone", help="network (default: settings.train.backbone)")
    model.add_argument("--epochs", type=int)
    model.add_argument("--image-size", type=int)
    model.add_argument("--device", help="auto, cpu, cuda")
    model.add_argument("--resume", type=Path, help="a last.pt checkpoint to continue from")
    out = parser.add_argument_group("output")
    out.add_argument("--no-register", action="store_true", help="write the report but export nothing")
    out.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(
        level=logging.INFO if rank == 0 else logging.WARNING,
        format=f"%(asctime)s [rank {rank}] %(levelname)s %(name)s: %(message)s",
    )
    from catalog.db import open_catalog
    from catalog.settings import Settings
    from trainer.run import train_run

    try:
        settings = Settings()
        engine = None if args.from_folder else open_catalog(settings.resolved_database_url)
        result = train_run(
            settings,
            engine,
            from_folder=args.from_folder,
            backbone=args.backbone,
            epochs=args.epochs,
            image_size=args.image_size,
            device=args.device,
            resume=args.resume,
            progress=not args.no_progress and sys.stderr.isatty(),
            register=not args.no_register,
        )
    except CatalogError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if rank == 0:
        metrics = result.metrics
        print(
            f"run {result.run_dir}: test macro-F1 {metrics['test_macro_f1']:.4f}, "
            f"version {result.version or '(not registered)'}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m sandbox.characters OUT --characters 10 --images 60 --seed 0`: write a synthetic dataset."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from sandbox.characters.dataset import generate_dataset


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox.characters", description=__doc__)
    parser.add_argument("out", type=Path, help="a new or empty folder")
    parser.add_argument("--characters", type=int, default=10)
    parser.add_argument("--images", type=int, default=60, help="portraits per character")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--scenes", type=int, default=0, help="multi-face scenes")
    parser.add_argument("--near-duplicates", type=int, default=0)
    parser.add_argument("--size", type=int, default=256, help="portrait side in pixels")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        generate_dataset(
            args.out,
            characters=args.characters,
            images=args.images,
            seed=args.seed,
            scenes=args.scenes,
            near_duplicates=args.near_duplicates,
            size=args.size,
            progress=sys.stderr.isatty(),
        )
    except (ValueError, FileExistsError) as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

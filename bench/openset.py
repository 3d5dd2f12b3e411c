"""The open world on real pictures: the dev protocol, today's closed-set answer beside the new one.

    NAMAE_DEV_SET=/path/to/Anime-Face-Recognition .venv/bin/python -m bench.openset --model DIR

The dev set is the public repository Sytwu/Anime-Face-Recognition (`face_dataset/<character>/`,
`train.csv`, `test.csv`; never committed). Protocol: five characters, drawn with a fixed seed, are
held out; the model (`--model`, a registry version folder with its memory, trained on the other
fifteen from their train.csv pictures, e.g. `namae train --from-folder SPLIT/known_train` with
`--write-split SPLIT`) answers
- the fifteen known characters' test.csv pictures,
- every picture of the five held-out characters, as strangers, then the few-shot curve (k = 1, 5,
  10, 20 of their faces added to the memory, the pictures past 20 answered),
- pictures with no character: the photographs shipped in scikit-image, matplotlib and
  scikit-learn, scikit-image's human faces, and generated noise, flat colours, gradients, stripes.

Baseline, same run, same model: today's answer (the head's calibrated top probability against the
card's threshold, no memory). Without the dev set (or without --model) the benchmark writes a
report that says why it skipped. --quick answers a tenth of each set.
"""

from __future__ import annotations

import csv
import glob
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import cascade_path, emit, interleave, parser, ratio, summary
from catalog.settings import Settings
from media.decode import DecodeLimits, ImageRejected
from models.classifier import Classifier
from models.memory import MEMORY_NAME, CharacterMemory
from trainer import openeval
from trainer.openeval_answers import Pictures
from trainer.openset_run import synthetic_negatives

HELD_OUT = 5
SPLIT_SEED = 16
DEV_SET_ENV = "NAMAE_DEV_SET"
MODEL_ENV = "NAMAE_DEV_MODEL"
TARGETS = {
    "known_macro_f1": 0.95,
    "known_coverage": 0.90,
    "known_precision": 0.98,
    "unknown_named": 0.10,
    "not_characters_named": 0.01,
    "new_from_5_top1": 0.80,
    "new_from_20_top1": 0.90,
    "known_f1_loss_points": 1.0,  # with new characters from min_examples (5) faces or more
}


def split(dev_set: Path) -> dict[str, dict[str, list[Path]]]:
    """{"known_train"|"known_test"|"new_train"|"new_test": {character: [files]}} from the csv files."""
    characters = sorted(p.name for p in (dev_set / "face_dataset").iterdir() if p.is_dir())
    held_out = set(random.Random(SPLIT_SEED).sample(characters, HELD_OUT))
    parts: dict[str, dict[str, list[Path]]] = {}
    for part in ("train", "test"):
        with (dev_set / f"{part}.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                path = dev_set / row["path"].replace("\\", "/")
                group = f"{'new' if row['label'] in held_out else 'known'}_{part}"
                parts.setdefault(group, {}).setdefault(row["label"], []).append(path)
    return parts


def write_split(parts: dict[str, dict[str, list[Path]]], out: Path) -> None:
    """The split as folders of symbolic links (for `namae train --from-folder OUT/known_train`)."""
    for group, characters in parts.items():
        for character, files in characters.items():
            folder = out / group / character
            folder.mkdir(parents=True, exist_ok=True)
            for path in files:
                link = folder / path.name
                if not link.exists():
                    link.symlink_to(path.resolve())


def pictures(groups: list[dict[str, list[Path]]], limits: DecodeLimits, every: int) -> Pictures:
    out = Pictures()
    for characters in groups:
        for character, files in sorted(characters.items()):
            for path in files[::every]:
                out.images.append(limits.decode_file(path).rgb)
                out.labels.append(character)
                out.names.append(path.name)
    return out


def not_characters(every: int, seed: int) -> Pictures:
    """Photographs and drawings that ship inside installed packages, human faces, generated noise."""
    out = Pictures()
    files: list[str] = []
    try:
        import skimage

        data = Path(skimage.__file__).parent / "data"
        files += sorted(glob.glob(str(data / "*.png")) + glob.glob(str(data / "*.jpg")))
        lfw = np.load(data / "lfw_subset.npy")
        for i, face in enumerate(lfw[::every]):
            grey = (255 * (face - face.min()) / max(1e-9, float(face.max() - face.min()))).astype(np.uint8)
            out.images.append(np.ascontiguousarray(np.stack([grey] * 3, -1)))
            out.labels.append(None)
            out.names.append(f"lfw-{i}")
    except ImportError:
        print("scikit-image is not installed: no sample photographs or human faces", file=sys.stderr)
    import matplotlib
    import sklearn.datasets

    files += sorted(glob.glob(str(Path(matplotlib.get_data_path()) / "sample_data" / "*.[pj][np]g")))
    files += sorted(glob.glob(str(Path(sklearn.datasets.__file__).parent / "images" / "*.jpg")))
    limits = DecodeLimits.from_settings(Settings(_env_file=None))
    for path in files[::every]:
        try:
            out.images.append(limits.decode_file(Path(path)).rgb)
        except (OSError, ImageRejected):
            continue
        out.labels.append(None)
        out.names.append(Path(path).name)
    for i, rgb in enumerate(synthetic_negatives(256, count=max(5, 60 // every), seed=seed)):
        out.images.append(rgb)
        out.labels.append(None)
        out.names.append(f"generated-{i}")
    return out


def known_f1_loss_points(base_f1: float, few: dict[str, dict[str, float]], min_examples: int) -> float:
    """The known characters' worst macro-F1 loss, in points, once new characters are added from
    k faces. The product names a character from examples only once the memory holds
    `min_examples` of its faces, so smaller k (kept in the curve) do not count."""
    counted = [row["known_macro_f1"] for k, row in few.items() if int(k) >= min_examples]
    counted = counted or [row["known_macro_f1"] for row in few.values()]
    return 100 * max(0.0, base_f1 - min(counted))


def skip(reason: str, args: Any, started: float) -> None:
    print(f"bench.openset skipped: {reason}", file=sys.stderr)
    emit("openset", {"skipped": reason, "baseline": None, "candidate": None, "results": {}, "ratios": {},
                     "targets": []}, args, started)  # fmt: skip


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--data", type=Path, default=os.environ.get(DEV_SET_ENV))
    args_parser.add_argument("--model", type=Path, default=os.environ.get(MODEL_ENV))
    args_parser.add_argument(
        "--write-split", type=Path, default=None, help="write the split's folders and stop"
    )
    args_parser.add_argument("--draws", type=int, default=3)
    args = args_parser.parse_args()
    started = time.perf_counter()
    if args.data is None or not (Path(args.data) / "face_dataset").is_dir():
        skip(
            f"no dev set: set {DEV_SET_ENV} (or --data) to a checkout of Sytwu/Anime-Face-Recognition",
            args,
            started,
        )
        return
    parts = split(Path(args.data))
    if args.write_split is not None:
        write_split(parts, args.write_split)
        print(f"wrote the split to {args.write_split}", file=sys.stderr)
        return
    if args.model is None or not (Path(args.model) / MEMORY_NAME).is_file():
        skip(f"no model: set {MODEL_ENV} (or --model) to a version folder with {MEMORY_NAME}, trained on "
             "SPLIT/known_train (see --write-split)", args, started)  # fmt: skip
        return
    every = 10 if args.quick else 1
    settings = Settings(_env_file=None)
    from media.faces import FaceDetector

    finder = FaceDetector(cascade_path(), settings.faces)
    classifier = Classifier.load(Path(args.model), intra_op_threads=1)
    memory = CharacterMemory.load(Path(args.model) / MEMORY_NAME)
    limits = DecodeLimits.from_settings(settings)
    known = pictures([parts["known_test"]], limits, every)
    strangers = pictures([parts["new_train"], parts["new_test"]], limits, 1 if not args.quick else 4)
    others = not_characters(every, args.seed)
    result = openeval.evaluate(
        classifier, memory, known, unknown=strangers, not_characters=others, finder=finder,
        draws=1 if args.quick else args.draws, seed=args.seed, progress=lambda m: print(m, file=sys.stderr),
    )  # fmt: skip
    result.pop("_plots", None)
    timing = _timing(classifier, memory, known, args.quick)
    k = result["known"]
    few = result["few_shot"]["by_shots"]
    base_f1 = k["answer"]["macro_f1"]
    loss_points = known_f1_loss_points(base_f1, few, result["thresholds"]["min_examples"])
    measured = {
        "known_macro_f1": k["answer"]["macro_f1"],
        "known_coverage": k["answer"]["coverage"],
        "known_precision": k["answer"]["precision"],
        "unknown_named": result["unknown"]["named"],
        "not_characters_named": result["not_characters"]["named"],
        "new_from_5_top1": few["5"]["top1"],
        "new_from_20_top1": few["20"]["top1"],
        "known_f1_loss_points": loss_points,
    }
    lower_is_better = {"unknown_named", "not_characters_named", "known_f1_loss_points"}
    targets = [
        {
            "name": name,
            "target": f"{'<=' if name in lower_is_better else '>='} {TARGETS[name]}",
            "measured": round(value, 4),
            "met": value <= TARGETS[name] if name in lower_is_better else value >= TARGETS[name],
        }
        for name, value in measured.items()
    ]
    payload = {
        "baseline": "today's closed-set answer: head probability >= the card's threshold, no memory",
        "candidate": "head + character memory + the card's open-set thresholds (models.openset)",
        "protocol": {
            "held_out": result["unknown"]["characters"],
            "known_pictures": k["pictures"],
            "stranger_pictures": result["unknown"]["pictures"],
            "not_character_pictures": result["not_characters"]["pictures"],
            "every": every,
        },
        "results": {**result, "timing_ms": timing},
        "ratios": {
            "unknown_named_today_over_ours": ratio(
                result["unknown"]["named_today"], max(1e-3, result["unknown"]["named"])
            ),
            "not_characters_named_today_over_ours": ratio(
                result["not_characters"]["named_today"], max(1e-3, result["not_characters"]["named"])
            ),
            "answer_ms_ours_over_today": ratio(timing["ours"]["median_ms"], timing["today"]["median_ms"]),
        },
        "targets": targets,
    }
    emit("openset", payload, args, started)


def _timing(classifier: Classifier, memory: CharacterMemory, known: Pictures, quick: bool) -> dict[str, Any]:
    """Per-face decision time after the model ran: today's threshold vs head + memory."""
    from models.open_world import OpenWorld

    assert classifier.card.open_set is not None
    world = OpenWorld.for_card(classifier.card, memory)
    looks = classifier.infer(known.images[:64])
    probabilities = looks.probabilities
    today = classifier.card.thresholds

    def old() -> None:
        for row in probabilities:
            best = int(row.argmax())
            _ = row[best] >= today.for_label(classifier.labels[best])

    def new() -> None:
        world.decide(looks)

    times = interleave({"today": old, "ours": new}, repeats=5 if quick else 30)
    return {name: summary([t / len(probabilities) for t in values]) for name, values in times.items()}


if __name__ == "__main__":
    main()

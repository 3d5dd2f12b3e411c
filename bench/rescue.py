"""The finder's second chance on real posts where it finds no face: today's answer (the picture's
regions under the no-face bar) beside the cascade's weaker candidates answered as faces first
(`faces.rescue_neighbors`, `models.answer`), same model, same pictures, one run.

    .venv/bin/python -m bench.rescue --posts DIR --model VERSION_DIR [--examples 20]
        [--net FINDER_DIR --rescue-threshold 0.3]

`DIR/<character>/*`: whole pictures as people post them (e.g. the `images/raw` of the public
JLaoo/Classifying-Anime-Characters-via-Transfer-Learning, 8 New Game! characters; never committed).
Characters the model does not know are added to its memory from up to `--examples` face crops each,
from posts where the cascade finds a face; those posts are not answered. Reported on the posts where
the cascade finds no face: named, named right, precision, answer kinds, and milliseconds per
picture, beside the same figures on the posts with one face found (not among the examples: how
well the model names these characters' faces at all); and how many of the pictures without a
character (`bench.openset.not_characters`) get a name. Skips with its reason when the posts or the
model are not given (NAMAE_BENCH_POSTS, NAMAE_DEV_MODEL).

With `--net`, the same for the trained finder in FINDER_DIR (`namae train-faces --out`), which the
product gives no second chance: here its boxes scored from `--rescue-threshold` up to its own
threshold are one, and the examples come from the faces it finds.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import cascade_path, emit, interleave, parser, ratio, summary
from bench.openset import MODEL_ENV, not_characters
from catalog.settings import Settings
from media.boxes import Box
from media.decode import DecodeLimits
from media.facenet import NetFaceFinder
from media.faces import FaceDetector, FaceFinder
from models.answer import FaceAnswer, answer_pixels
from models.classifier import Classifier
from models.memory import MEMORY_NAME, MemoryEntry
from models.openset import Kind
from trainer.openeval_answers import most_confident, read_folder

POSTS_ENV = "NAMAE_BENCH_POSTS"


def skip(reason: str, args: Any, started: float) -> None:
    print(f"bench.rescue skipped: {reason}", file=sys.stderr)
    emit("rescue", {"skipped": reason, "baseline": None, "candidate": None, "results": {}, "ratios": {},
                    "targets": []}, args, started)  # fmt: skip


def figures(answers: list[FaceAnswer], truth: list[str]) -> dict[str, Any]:
    named = [a.kind is Kind.NAME for a in answers]
    right = [
        n and a.best is not None and a.best.label == t for a, n, t in zip(answers, named, truth, strict=True)
    ]
    return {
        "pictures": len(answers),
        "named": sum(named) / max(1, len(answers)),
        "named_right": sum(right) / max(1, len(answers)),
        "precision": sum(right) / max(1, sum(named)),
        "from_a_face": sum(a.box is not None for a in answers) / max(1, len(answers)),
        "kinds": dict(Counter(a.kind.value for a in answers)),
    }


class WeakerNetBoxes:
    """A trained finder whose second chance is its boxes scored from `threshold` up to its own
    (the product's trained finder has none: `NetFaceFinder.rescue`)."""

    def __init__(self, finder: NetFaceFinder, threshold: float) -> None:
        self.finder, self.threshold = finder, threshold

    def detect(self, rgb: np.ndarray) -> list[Box]:
        return self.finder.detect(rgb)

    def rescue(self, rgb: np.ndarray) -> list[Box]:
        if self.threshold >= self.finder.threshold:
            return []
        return [box for box, _ in self.finder.detect_scored(rgb, threshold=self.threshold)]

    def fills(self, rgb: np.ndarray) -> bool:
        return self.finder.fills(rgb)

    def crop(self, rgb: np.ndarray, box: Box, size: int | None = None) -> np.ndarray:
        return self.finder.crop(rgb, box, size)


def finders(settings: Settings, net: Path | None, threshold: float) -> tuple[FaceFinder, FaceFinder, str]:
    """The finder without a second chance, the same finder with one, and what the second one is
    (`threshold`: the trained finder's second chance; the cascade's is `faces.rescue_neighbors`)."""
    if net is None:
        faces = settings.faces
        today = FaceDetector(cascade_path(), faces.model_copy(update={"rescue_neighbors": None}))
        return (
            today,
            FaceDetector(cascade_path(), faces),
            f"the cascade's boxes at {faces.rescue_neighbors} neighbours answered first",
        )
    trained = NetFaceFinder(net, settings.faces)
    return (
        trained,
        WeakerNetBoxes(trained, threshold),
        f"the trained finder's boxes scored from {threshold} to {trained.threshold} answered first",
    )


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--posts", type=Path, default=os.environ.get(POSTS_ENV))
    args_parser.add_argument("--model", type=Path, default=os.environ.get(MODEL_ENV))
    args_parser.add_argument("--examples", type=int, default=20)
    args_parser.add_argument("--net", type=Path, help="a trained finder's folder, instead of the cascade")
    args_parser.add_argument(
        "--rescue-threshold", type=float, default=0.3, help="with --net: the second chance's score"
    )
    args = args_parser.parse_args()
    started = time.perf_counter()
    if args.posts is None or not Path(args.posts).is_dir():
        skip(f"no posts: set {POSTS_ENV} (or --posts) to a folder of <character>/ pictures", args, started)
        return
    if args.model is None or not (Path(args.model) / MEMORY_NAME).is_file():
        skip(f"no model: set {MODEL_ENV} (or --model) to a version folder with {MEMORY_NAME}", args, started)
        return
    settings = Settings(_env_file=None)
    limits = DecodeLimits.from_settings(settings)
    today, second, candidate = finders(settings, args.net, args.rescue_threshold)
    model = Classifier.load(Path(args.model), intra_op_threads=1)
    if model.world is None:
        skip(f"{args.model} answers without a memory: no no-face bar, no second chance", args, started)
        return
    posts = read_folder(Path(args.posts), limits, per_character=True)
    count = len(posts.images)
    found = [today.detect(rgb) for rgb in posts.images]
    order = np.random.default_rng(args.seed).permutation(count)
    taken: Counter[str] = Counter()
    examples: list[int] = []
    for i in order:
        character = posts.labels[i]
        if character in model.labels or not found[i] or taken[character] >= args.examples:
            continue
        taken[character] += 1
        examples.append(i)
    crops = [
        today.crop(posts.images[i], max(found[i], key=lambda box: box.area), model.image_size)
        for i in examples
    ]
    vectors = model.infer(crops).vectors
    model.world.memory.add(
        MemoryEntry(posts.names[i], posts.labels[i], "bench", v)
        for i, v in zip(examples, vectors, strict=True)
    )
    model.world.refresh()
    no_face = [i for i in range(count) if not found[i]]
    if args.quick:
        no_face = no_face[::8]
    truth = [posts.labels[i] for i in no_face]
    pictures = [posts.images[i] for i in no_face]
    others = not_characters(4 if args.quick else 1, args.seed).images
    results: dict[str, Any] = {"posts": count, "no_face_found": len(no_face) / max(1, count),
                               "examples_added": dict(taken)}  # fmt: skip
    # what the model makes of these characters' faces at all: the posts with one face found, not
    # among the examples (the same answer with or without the second chance)
    single = [i for i in range(count) if len(found[i]) == 1 and i not in examples]
    if args.quick:
        single = single[::8]
    results["one_face_found"] = figures(
        [most_confident(answer_pixels(posts.images[i], model=model, finder=today)) for i in single],
        [posts.labels[i] for i in single],
    )
    for key, finder in (("regions", today), ("second_chance", second)):
        answers = [most_confident(answer_pixels(rgb, model=model, finder=finder)) for rgb in pictures]
        results[key] = figures(answers, truth)
        named = [
            most_confident(answer_pixels(rgb, model=model, finder=finder)).kind is Kind.NAME for rgb in others
        ]
        results[key]["not_characters"] = len(others)
        results[key]["not_characters_named"] = sum(named) / max(1, len(others))
        print(f"{key}: {results[key]}", file=sys.stderr)
    timed = pictures[:: max(1, len(pictures) // (10 if args.quick else 60))]
    samples = interleave(
        {key: (lambda f=finder: [answer_pixels(rgb, model=model, finder=f) for rgb in timed])
         for key, finder in (("regions", today), ("second_chance", second))},
        repeats=2 if args.quick else 5, warmup=1,
    )  # fmt: skip
    times = {key: summary([ms / len(timed) for ms in values]) for key, values in samples.items()}
    results["ms_per_picture"] = times
    emit(
        "rescue",
        {
            "baseline": "regions (the picture and a grid of squares under the no-face bar)",
            "candidate": candidate,
            "results": results,
            "ratios": {
                "named_right": ratio(
                    results["second_chance"]["named_right"], results["regions"]["named_right"]
                ),
                "ms_per_picture": ratio(times["second_chance"]["median_ms"], times["regions"]["median_ms"]),
            },
            "targets": [],
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()

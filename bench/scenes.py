"""Several characters in one picture, end to end: of the faces present, the share named right;
the cascade (baseline) beside the trained finder, same model, same pictures, one run.

    .venv/bin/python -m bench.scenes --model VERSION_DIR --net FINDER_DIR
        [--faces DIR] [--posts DIR] [--scenes 200]

Two kinds of picture, each from pictures neither the model nor the finder trained on:
- pasted scenes (`--faces DIR/<character>/*`, face crops, e.g. the dev set's `known_test` split
  of `namae train --write-split`): made as the finder's pasted training pictures are
  (`trainer.face_paste.pasted_scene`): 2-5 different characters (3.25 on average; the hand-boxed
  scenes of issue 14 had 3.2), one face each, 6-35% of the long side log-uniform (median 14.5%:
  those scenes' faces had a median short side of 71-107 px on a 512 px copy), tilted, a quarter
  partly covered, with non-face patches, on a photograph or a drawn backdrop, 800-1600 px long.
  A face is the answered face that overlaps its box by IoU >= 0.3. Broken down by size (small
  under 10% of the long side, large from 20%) and by covered or not.
- collages (`--posts DIR/<character>/*`, whole posts filed under one character, e.g. a held-out
  split of the JLaoo posts): of the posts every finder finds exactly one face in (the same face:
  a character's folder also holds group pictures, whose other faces would count as mistakes),
  2-4 of different characters side by side, each scaled to the row's height; each post's face is
  its most confident answered face centred in it. The same posts answered alone are reported
  beside: what the collages can at best be. A post can show two characters of which the finders
  see one face, the other character's: the folder's `several_characters.txt` (one
  `<character>/<file>` a line, `#` comments), posts checked by eye to show more than one
  character, are left out whatever their answer.

The pictures (`bench.scene_pictures`) are dealt from a shuffled deck, each once per round, so that
every post or crop counts alike whatever its character's share. Every picture is saved as a JPEG
(quality 90) and answered through the one answer path, as the bot answers a post
(`models.answer.answer_image`). The finders: the cascade, the trained finder
with one look at its card's side, and as configured (`faces.net_second_side`: a second look at a
larger side where the first finds no face or a small one). Reported per finder: faces found, named right,
named wrong, found but not named; answered faces that are none of the pasted ones and still name
someone; milliseconds per picture. Characters the model does not know are left out. Skips with
its reason when no pictures, no model or no trained finder is given (NAMAE_BENCH_SCENE_FACES,
NAMAE_BENCH_POSTS, NAMAE_DEV_MODEL, NAMAE_FACES__TRAINED_DIR).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.harness import Target, cascade_path, emit, parser, ratio
from bench.openset import MODEL_ENV
from bench.rescue import POSTS_ENV
from bench.scene_pictures import Scene, Truth, collages, pasted_scenes, without_listed
from catalog.settings import Settings
from media.boxes import iou
from media.decode import DecodeLimits, ImageRejected
from media.facenet import NetFaceFinder
from media.faces import FaceDetector, FaceFinder
from models.answer import FaceAnswer, Kind, answer_image, answer_pixels
from models.classifier import Classifier
from trainer.face_data import FloatBox, crop_files, package_photos
from trainer.openeval_answers import confidence

FACES_ENV = "NAMAE_BENCH_SCENE_FACES"
MATCH_IOU = 0.3
TARGET_NAMED_RIGHT = 0.92


def outcomes(answers: Sequence[FaceAnswer], scene: Scene) -> tuple[list[str], int]:
    """Per true face: "right", "wrong" (named someone else), "not_named" (found, answered with
    another kind) or "missed" (no answered face is it); and how many answered faces are none of
    the true faces and still name someone. A pasted face is the answered face that overlaps it by
    IoU >= 0.3, each answered face matched once, the pairs that overlap most first; a collage's
    panel is its most confident answered face centred in it (a post may show others too)."""
    boxed = [(i, a.box) for i, a in enumerate(answers) if a.box is not None]
    taken: dict[int, int] = {}  # true face -> answered face
    if scene.panels:
        for j, truth in enumerate(scene.faces):
            x, y, w, h = truth.box
            inside = [i for i, b in boxed if x <= b.x + b.w / 2 < x + w and y <= b.y + b.h / 2 < y + h]
            if inside:
                taken[j] = max(inside, key=lambda i: confidence(answers[i]))
        extra = 0
    else:
        pairs = sorted(
            ((iou(box.rect, _rect(t.box)), i, j) for i, box in boxed for j, t in enumerate(scene.faces)),
            reverse=True,
        )
        used: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < MATCH_IOU:
                break
            if i not in used and j not in taken:
                taken[j] = i
                used.add(i)
        extra = sum(1 for i, _ in boxed if i not in used and answers[i].kind is Kind.NAME)
    result = []
    for j, truth in enumerate(scene.faces):
        answer = answers[taken[j]] if j in taken else None
        if answer is None:
            result.append("missed")
        elif answer.kind is not Kind.NAME or answer.best is None:
            result.append("not_named")
        else:
            result.append("right" if answer.best.label == truth.character else "wrong")
    return result, extra


def _rect(box: FloatBox) -> tuple[int, int, int, int]:
    return (round(box[0]), round(box[1]), round(box[2]), round(box[3]))


def _shares(results: list[str]) -> dict[str, Any]:
    n = max(1, len(results))
    return {
        "faces": len(results),
        "found": round(sum(r != "missed" for r in results) / n, 4),
        "named_right": round(results.count("right") / n, 4),
        "named_wrong": round(results.count("wrong") / n, 4),
        "not_named": round(results.count("not_named") / n, 4),
    }


def figures(
    model: Classifier, finder: FaceFinder, scenes: list[Scene], limits: DecodeLimits
) -> dict[str, Any]:
    """The module docstring's figures for one finder on one kind of scene."""
    per_face: list[tuple[Truth, str]] = []
    extra = no_face = 0
    ms: list[float] = []
    for scene in scenes:
        started = time.perf_counter()
        answer = answer_image(scene.jpeg, model=model, finder=finder, limits=limits)
        ms.append((time.perf_counter() - started) * 1000)
        got, more = outcomes(answer.faces, scene)
        extra += more
        no_face += all(f.box is None for f in answer.faces)
        per_face += list(zip(scene.faces, got, strict=True))
    out = _shares([r for _, r in per_face])
    out["scenes"] = len(scenes)
    out["scenes_without_a_face_found"] = no_face
    out["extra_faces_named"] = extra
    tags = sorted({tag for truth, _ in per_face for tag in truth.tags})
    out["by"] = {tag: _shares([r for t, r in per_face if tag in t.tags]) for tag in tags}
    out["median_ms_per_scene"] = round(statistics.median(ms), 1) if ms else None
    return out


def skip(reason: str, args: Any, started: float) -> None:
    print(f"bench.scenes skipped: {reason}", file=sys.stderr)
    emit("scenes", {"skipped": reason, "baseline": None, "candidate": None, "results": {}, "ratios": {},
                    "targets": []}, args, started)  # fmt: skip


def one_face_posts(
    by_character: dict[str, list[Path]],
    model: Classifier,
    finders: dict[str, FaceFinder],
    limits: DecodeLimits,
) -> tuple[dict[str, list[Path]], dict[str, Any]]:
    """The posts every finder finds exactly one face in, the same face (a folder of one
    character's posts also holds group pictures, whose other faces are no mistake), and how the
    trained finder's answer names them alone: what a collage can at best be."""
    kept: dict[str, list[Path]] = {}
    right = total = 0
    for character, paths in by_character.items():
        for path in paths:
            try:
                rgb = limits.decode(path.read_bytes()).rgb
            except (OSError, ImageRejected):
                continue
            total += 1
            found = [finder.detect(rgb) for finder in finders.values()]
            if (
                any(len(boxes) != 1 for boxes in found)
                or min(found[0][0].iou(b[0]) for b in found) < MATCH_IOU
            ):
                continue
            kept.setdefault(character, []).append(path)
            (answer,) = answer_pixels(rgb, model=model, finder=finders["trained"])
            right += answer.kind is Kind.NAME and answer.best is not None and answer.best.label == character
    count = sum(len(p) for p in kept.values())
    return kept, {"posts": total, "one_face": count, "named_right": round(right / max(1, count), 4)}


def _known(folder: Path, model: Classifier) -> tuple[dict[str, list[Path]], list[str]]:
    """The pictures of each of `folder`'s characters the model knows, and the characters left out."""
    folders = sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    known = {d.name: crop_files(d) for d in folders if d.name in model.labels}
    return known, sorted(d.name for d in folders if d.name not in model.labels)


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--faces", type=Path, default=os.environ.get(FACES_ENV))
    args_parser.add_argument("--posts", type=Path, default=os.environ.get(POSTS_ENV))
    args_parser.add_argument("--model", type=Path, default=os.environ.get(MODEL_ENV))
    args_parser.add_argument("--net", type=Path, default=os.environ.get("NAMAE_FACES__TRAINED_DIR"))
    args_parser.add_argument("--scenes", type=int, default=200, help="of each kind")
    args = args_parser.parse_args()
    started = time.perf_counter()
    given = {kind: Path(d) for kind, d in (("pasted", args.faces), ("collages", args.posts)) if d}
    if not any(d.is_dir() for d in given.values()):
        skip(f"no pictures: set {FACES_ENV} (or --faces) or {POSTS_ENV} (or --posts)", args, started)
        return
    if args.model is None or not Path(args.model).is_dir():
        skip(f"no model: set {MODEL_ENV} (or --model) to a registry version folder", args, started)
        return
    if args.net is None or not Path(args.net).is_dir():
        skip("no trained finder: set NAMAE_FACES__TRAINED_DIR (or --net) to its folder", args, started)
        return
    settings = Settings(_env_file=None)
    limits = DecodeLimits.from_settings(settings)
    model = Classifier.load(Path(args.model), intra_op_threads=1)
    count = 10 if args.quick else args.scenes
    finders: dict[str, FaceFinder] = {
        "cascade": FaceDetector(cascade_path(), settings.faces),
        "trained_one_look": NetFaceFinder(
            Path(args.net), settings.faces.model_copy(update={"net_second_side": 0})
        ),
        "trained": NetFaceFinder(Path(args.net), settings.faces),
    }
    results: dict[str, Any] = {}
    ratios: dict[str, float] = {}
    targets = []
    for kind, folder in given.items():
        if not folder.is_dir():
            continue
        known, left_out = _known(folder, model)
        results[kind] = {"left_out": left_out}
        if kind == "collages":
            known, results[kind]["left_out_several_characters"] = without_listed(folder, known)
            known, alone = one_face_posts(known, model, finders, limits)
            results[kind]["posts_alone"] = alone
        if len(known) < 2:
            results[kind]["skipped"] = f"{folder}: fewer than two characters the model knows"
            continue
        if kind == "pasted":
            scenes = pasted_scenes(known, count, args.seed, package_photos())
        else:
            scenes = collages(known, count, args.seed)
        results[kind]["characters"] = len(known)
        for name, finder in finders.items():
            results[kind][name] = figures(model, finder, scenes, limits)
            print(f"{kind}, {name}: {results[kind][name]}", file=sys.stderr)
        trained, cascade = results[kind]["trained"], results[kind]["cascade"]
        ratios[f"{kind}_named_right"] = ratio(trained["named_right"], cascade["named_right"])
        ratios[f"{kind}_named_right_second_look"] = ratio(
            trained["named_right"], results[kind]["trained_one_look"]["named_right"]
        )
        targets.append(
            Target(f"{kind}: faces named right", TARGET_NAMED_RIGHT, trained["named_right"], "share", False)
        )
    if not ratios:
        skip("; ".join(r.get("skipped", "") for r in results.values()), args, started)
        return
    emit(
        "scenes",
        {
            "baseline": "the anime face cascade",
            "candidate": f"the trained finder in {args.net}",
            "results": results,
            "ratios": ratios,
            "targets": [t.as_dict() for t in targets],
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()

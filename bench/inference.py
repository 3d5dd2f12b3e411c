"""Inference: onnxruntime beside torch eager, decode paths, and decode-to-answer, in one run.

    .venv/bin/python -m bench.inference [--quick] [--repeats 30] [--results DIR]

1. model: the default model (bench/model.py: the trainer's default backbone with ImageNet weights,
   exported through the real export path) through `models.Classifier`'s onnxruntime session
   against torch eager on the same weights and the same prepared batch: batch 1 and 16, 1 and 2
   intra-op threads; latency and images/s. Baseline: torch eager; and the int8 graph training ships
   beside the float one (`int8_over_float`, models/int8.py).
2. decode: a 1.5 MP and a 12 MP JPEG (Pillow full decode, Pillow `draft` at 1/2 and 1/4, OpenCV
   full and reduced decode, our `decode_image` full and at the bot's draft size), a PNG and an
   animated WebP (Pillow, OpenCV where it reads the format, `decode_image`). Baseline: Pillow full.
3. decode to answer: `models.answer.answer_image` (decode, anime-face detection, crops, model) on
   the same JPEGs as the bot runs it (reduced-scale decode, detection at `faces.detect_max_side`,
   one onnxruntime thread, the int8 graph), beside the former configuration (full decode, detection
   at up to 1600 px) and beside the bot's configuration with the float graph; stage times of the
   bot's configuration; the face count each finds.
4. detection side: the anime-face cascade on synthetic scenes and portraits of 1 to 12 MP with
   known face boxes, at several values of `faces.detect_max_side`: faces found, false detections
   and median time. This is the measurement behind the default.

Every comparison is timed round-robin in one process (bench/harness.py); medians and ratios.
Target (2 cores, no GPU): a 1.5 MP JPEG with face detection and the default model, decode to
answer, at most 30 ms median.
"""

from __future__ import annotations

import io
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageSequence

from bench.harness import Target, cascade_path, colour_weight, emit, interleave, parser, ratio, summary
from media.boxes import iou

# The detection side the former default used; kept as the pipeline's same-run baseline.
FORMER_DETECT_SIDE = 1600


def _scene(width: int, height: int, characters: int, seed: int) -> Image.Image:
    from sandbox.characters.render import render_scene
    from sandbox.characters.traits import make_characters

    rng = np.random.default_rng(seed)
    specs = make_characters(characters, seed)
    image, _ = render_scene(specs, rng, size=(width, height))
    return image.convert("RGB")


def _encode(image: Image.Image, fmt: str, **params: Any) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def _animated_webp(frames: int, seed: int) -> bytes:
    from sandbox.characters.render import render_character
    from sandbox.characters.traits import make_characters

    spec = make_characters(1, seed)[0]
    rng = np.random.default_rng(seed)
    images = [render_character(spec, rng, 512)[0].convert("RGB") for _ in range(frames)]
    return _encode(images[0], "WEBP", save_all=True, append_images=images[1:], duration=80, quality=80)


def files(seed: int) -> dict[str, bytes]:
    scene = _scene(1500, 1000, 3, seed)
    return {
        "jpeg_1.5mp": _encode(scene, "JPEG", quality=90),
        "jpeg_12mp": _encode(_scene(4000, 3000, 3, seed + 1), "JPEG", quality=90),
        "png_1.5mp": _encode(scene, "PNG"),
        "webp_animated_512px_24_frames": _animated_webp(24, seed + 2),
    }


def _pillow_full(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"))


def _pillow_draft(data: bytes, factor: int) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        image.draft("RGB", (image.width // factor, image.height // factor))
        return np.asarray(image.convert("RGB"))


def _opencv(data: bytes, flag: int) -> np.ndarray:
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    return cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB)


def _pillow_all_frames(data: bytes) -> list[np.ndarray]:
    with Image.open(io.BytesIO(data)) as image:
        return [np.asarray(frame.convert("RGB")) for frame in ImageSequence.Iterator(image)]


def decoders(name: str, bot_draft_side: int) -> dict[str, Callable[[bytes], object]]:
    from catalog.settings import ImageLimits
    from media.decode import decode_image

    limits = ImageLimits()
    ours = {"namae_decode_image": lambda data: decode_image(data, limits)}
    if name.startswith("jpeg"):
        return {
            "pillow_full": _pillow_full,
            "pillow_draft_1/2": lambda data: _pillow_draft(data, 2),
            "pillow_draft_1/4": lambda data: _pillow_draft(data, 4),
            "opencv_full": lambda data: _opencv(data, cv2.IMREAD_COLOR),
            "opencv_reduced_1/2": lambda data: _opencv(data, cv2.IMREAD_REDUCED_COLOR_2),
            "opencv_reduced_1/4": lambda data: _opencv(data, cv2.IMREAD_REDUCED_COLOR_4),
            **ours,
            "namae_decode_image_bot": lambda data: decode_image(data, limits, draft_long_side=bot_draft_side),
        }
    if name.startswith("png"):
        return {
            "pillow_full": _pillow_full,
            "opencv_full": lambda data: _opencv(data, cv2.IMREAD_COLOR),
            **ours,
        }
    # OpenCV reads only the first frame of an animated WebP (when its build reads WebP at all).
    return {"pillow_first_frame": _pillow_full, "pillow_all_frames": _pillow_all_frames, **ours}


def bench_decode(blobs: dict[str, bytes], repeats: int, bot_draft_side: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, data in blobs.items():
        contenders = decoders(name, bot_draft_side)
        samples = interleave(
            {key: (lambda fn=fn, data=data: fn(data)) for key, fn in contenders.items()}, repeats
        )
        baseline_key = next(iter(contenders))
        base = summary(samples[baseline_key])["median_ms"]
        shapes = {key: _shape(fn(data)) for key, fn in contenders.items()}
        out[name] = {
            "bytes": len(data),
            "baseline": baseline_key,
            "paths": {
                key: {
                    **summary(values),
                    "output": shapes[key],
                    "speedup_over_baseline": ratio(base, summary(values)["median_ms"], 2),
                }
                for key, values in samples.items()
            },
        }
    return out


def _shape(result: object) -> str:
    rgb = getattr(result, "rgb", result)
    if isinstance(rgb, list):
        return f"{len(rgb)} frames of {rgb[0].shape[1]}x{rgb[0].shape[0]}"
    frames = getattr(result, "frames", None)
    suffix = f", {len(frames)} frames sampled" if frames and len(frames) > 1 else ""
    return f"{rgb.shape[1]}x{rgb.shape[0]}{suffix}"


def bench_model(model: Any, repeats: int, threads: list[int], batches: list[int], seed: int) -> list[dict]:
    import torch

    from models import preprocess
    from models.classifier import Classifier
    from trainer.export import normalize_batch

    rng = np.random.default_rng(seed)
    raw = [rng.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(max(batches))]
    version_dir = model.registry_root / "versions" / model.version
    rows = []
    for count in threads:
        torch.set_num_threads(count)
        classifier = Classifier.load(version_dir, intra_op_threads=count, int8=False)
        quantized = Classifier.load(version_dir, intra_op_threads=count) if model.int8 else None
        for batch in batches:
            prepared = preprocess.to_batch(raw[:batch], model.image_size)
            feed = {preprocess.INPUT_NAME: prepared}

            def run_torch(prepared: np.ndarray = prepared) -> object:
                with torch.inference_mode():
                    return model.net(normalize_batch(prepared))

            candidates = {
                "onnxruntime": lambda feed=feed, c=classifier: c.session.run(None, feed),
                "torch_eager": run_torch,
            }
            if quantized is not None and quantized.graph == "int8":
                candidates["onnxruntime_int8"] = lambda feed=feed, c=quantized: c.session.run(None, feed)
            samples = interleave(candidates, repeats, warmup=3)
            timed = {name: summary(values) for name, values in samples.items()}
            row: dict[str, Any] = {"threads": count, "batch": batch}
            for name, stats in timed.items():
                row[name] = {**stats, "images_per_s": round(1000 * batch / stats["median_ms"], 1)}
            row["torch_over_onnxruntime"] = ratio(
                timed["torch_eager"]["median_ms"], timed["onnxruntime"]["median_ms"], 2
            )
            if "onnxruntime_int8" in timed:
                row["int8_over_float"] = ratio(
                    timed["onnxruntime_int8"]["median_ms"], timed["onnxruntime"]["median_ms"], 2
                )
            rows.append(row)
    return rows


def bench_answer(model: Any, blobs: dict[str, bytes], repeats: int) -> dict[str, Any]:
    from catalog.settings import FaceSettings, ImageLimits
    from media.decode import DecodeLimits, decode_image
    from media.faces import FaceDetector
    from models import colour, preprocess
    from models.answer import answer_image
    from models.classifier import Classifier

    faces = FaceSettings()
    limits = ImageLimits()
    version_dir = model.registry_root / "versions" / model.version
    bot_detector = FaceDetector(cascade_path(), faces)
    former_detector = FaceDetector(
        cascade_path(), faces.model_copy(update={"detect_max_side": FORMER_DETECT_SIDE})
    )
    # One onnxruntime thread, as the bot loads it (it runs `concurrency` images side by side instead).
    bot = Classifier.load(version_dir, intra_op_threads=1)
    floating = Classifier.load(version_dir, intra_op_threads=1, int8=False)
    draft_side = faces.detect_max_side
    bot_limits = DecodeLimits(limits, draft_side)
    former_limits = DecodeLimits(limits, None)
    weight = colour_weight(bot.card)
    out: dict[str, Any] = {}
    for name in ("jpeg_1.5mp", "jpeg_12mp"):
        data = blobs[name]

        def candidate(data: bytes = data) -> Any:
            return answer_image(data, model=bot, finder=bot_detector, limits=bot_limits)

        def baseline(data: bytes = data) -> Any:
            return answer_image(data, model=bot, finder=former_detector, limits=former_limits)

        def float_graph(data: bytes = data) -> Any:
            return answer_image(data, model=floating, finder=bot_detector, limits=bot_limits)

        decoded = decode_image(data, limits, draft_long_side=draft_side)
        boxes = bot_detector.detect(decoded.rgb)
        crops = [bot_detector.crop(decoded.rgb, box, bot.image_size) for box in boxes]
        # the colours beside the graph's embedding (models.colour), a part of stage_model
        prepared = preprocess.to_batch(crops or [decoded.rgb], bot.image_size)
        graph_width = bot.embedding_dim - (colour.BINS if bot.colour > 0 else 0)
        unit = np.full((len(prepared), graph_width), graph_width**-0.5, dtype=np.float32)
        samples = interleave(
            {
                "bot": candidate,
                "former": baseline,
                "float_graph": float_graph,
                "stage_decode": lambda data=data: decode_image(data, limits, draft_long_side=draft_side),
                "stage_detect": lambda rgb=decoded.rgb: bot_detector.detect(rgb),
                "stage_model": lambda inputs=crops or [decoded.rgb]: bot.infer(inputs),
                "stage_colour": lambda e=unit, p=prepared: colour.with_colour(e, p, weight),
            },
            repeats,
        )
        out[name] = {
            "bot": {**summary(samples["bot"]), "faces_found": len(candidate().faces)},
            "former": {**summary(samples["former"]), "faces_found": len(baseline().faces)},
            "bot_stages_median_ms": {
                stage.removeprefix("stage_"): summary(samples[stage])["median_ms"]
                for stage in ("stage_decode", "stage_detect", "stage_model", "stage_colour")
            },
            "colour_weight": weight,
            "former_over_bot": ratio(
                summary(samples["former"])["median_ms"], summary(samples["bot"])["median_ms"], 2
            ),
            # the bot's configuration with the float graph: what the int8 one saves end to end
            "graph": bot.graph,
            "float_graph": summary(samples["float_graph"]),
            "bot_over_float_graph": ratio(
                summary(samples["bot"])["median_ms"], summary(samples["float_graph"])["median_ms"], 2
            ),
        }
    return out


def detection_set(
    seed: int, quick: bool
) -> dict[str, list[tuple[np.ndarray, list[tuple[int, int, int, int]]]]]:
    from sandbox.characters.render import render_character, render_scene
    from sandbox.characters.traits import make_characters

    rng = np.random.default_rng(seed)
    specs = make_characters(8, seed)
    count = (lambda n: 1) if quick else (lambda n: n)

    def scene(size: tuple[int, int], characters: int, k: int) -> tuple[np.ndarray, list]:
        image, faces = render_scene([specs[(k + j) % 8] for j in range(characters)], rng, size=size)
        return np.asarray(image.convert("RGB")), [box for _, box in faces]

    def portrait(k: int) -> tuple[np.ndarray, list]:
        image, box = render_character(specs[k % 8], rng, 1024)
        return np.asarray(image.convert("RGB")), [box]

    return {
        "scene_1500x1000_2-3_faces": [scene((1500, 1000), 2 + k % 2, k) for k in range(count(10))],
        "scene_1920x1080_5-6_faces": [scene((1920, 1080), 5 + k % 2, k) for k in range(count(6))],
        "scene_4000x3000_3_faces": [scene((4000, 3000), 3, k) for k in range(count(3))],
        "portrait_1024": [portrait(k) for k in range(count(10))],
    }


def bench_detect_sides(seed: int, quick: bool, sides: list[int]) -> dict[str, Any]:
    from catalog.settings import FaceSettings
    from media.faces import FaceDetector

    sets = detection_set(seed, quick)
    out: dict[str, Any] = {}
    for side in sides:
        detector = FaceDetector(cascade_path(), FaceSettings(detect_max_side=side))
        row: dict[str, Any] = {"faces": 0, "found": 0, "false_detections": 0, "sets": {}}
        for name, images in sets.items():
            times, found, faces, false = [], 0, 0, 0
            for rgb, truth in images:
                started = time.perf_counter()
                boxes = detector.detect(rgb)
                times.append((time.perf_counter() - started) * 1000)
                faces += len(truth)
                found += sum(any(iou(box.rect, face) >= 0.3 for box in boxes) for face in truth)
                false += sum(not any(iou(box.rect, face) >= 0.3 for face in truth) for box in boxes)
            row["faces"] += faces
            row["found"] += found
            row["false_detections"] += false
            row["sets"][name] = {"found": f"{found}/{faces}", "median_ms": round(float(np.median(times)), 1)}
        row["recall"] = round(row["found"] / row["faces"], 3)
        out[str(side)] = row
    return out


def main() -> None:
    args_parser = parser(__doc__)
    args_parser.add_argument("--repeats", type=int, default=None, help="timed rounds per comparison")
    args = args_parser.parse_args()
    started = time.perf_counter()
    repeats = args.repeats or (3 if args.quick else 30)
    from bench.model import export_default_model
    from catalog.settings import FaceSettings

    blobs = files(args.seed)
    with tempfile.TemporaryDirectory(prefix="namae-bench-") as tmp:
        model = export_default_model(Path(tmp) / "models", seed=args.seed)
        rows = bench_model(model, repeats, threads=[1, 2], batches=[1, 16], seed=args.seed)
        decode = bench_decode(blobs, repeats, FaceSettings().detect_max_side)
        answer = bench_answer(model, blobs, repeats)
    default_side = FaceSettings().detect_max_side
    sides = sorted({default_side, FORMER_DETECT_SIDE} | (set() if args.quick else {640, 800, 1024}))
    detection = bench_detect_sides(args.seed, args.quick, sides)

    def model_row(threads: int, batch: int) -> dict[str, Any]:
        return next(row for row in rows if row["threads"] == threads and row["batch"] == batch)

    jpeg12 = decode["jpeg_12mp"]["paths"]
    target_ms = answer["jpeg_1.5mp"]["bot"]["median_ms"]
    emit(
        "inference",
        {
            "baseline": "torch eager on the same weights; Pillow full decode; the former pipeline "
            f"(full decode, detection at up to {FORMER_DETECT_SIDE} px)",
            "candidate": "models.Classifier (onnxruntime); decode paths; models.answer.answer_image "
            "as the bot configures it",
            "model": {
                "backbone": model.backbone,
                "image_size": model.image_size,
                "classes": len(model.labels),
                "weights": model.weights,
                "parity": model.parity,
                "int8": model.int8,
            },
            "repeats": repeats,
            "results": {
                "model": rows,
                "decode": decode,
                "decode_to_answer": answer,
                "detection_side": detection,
            },
            "ratios": {
                "torch_over_onnxruntime_batch1_1thread": model_row(1, 1)["torch_over_onnxruntime"],
                "torch_over_onnxruntime_batch16_2threads": model_row(2, 16)["torch_over_onnxruntime"],
                "jpeg_12mp_pillow_full_over_draft_1/4": jpeg12["pillow_draft_1/4"]["speedup_over_baseline"],
                "jpeg_12mp_pillow_full_over_opencv_reduced_1/4": jpeg12["opencv_reduced_1/4"][
                    "speedup_over_baseline"
                ],
                "jpeg_12mp_pillow_full_over_bot_decode": jpeg12["namae_decode_image_bot"][
                    "speedup_over_baseline"
                ],
                "answer_1.5mp_former_over_bot": answer["jpeg_1.5mp"]["former_over_bot"],
                "answer_12mp_former_over_bot": answer["jpeg_12mp"]["former_over_bot"],
                "faces_found_default_side_over_former": ratio(
                    detection[str(default_side)]["found"], detection[str(FORMER_DETECT_SIDE)]["found"], 3
                ),
            },
            "targets": [
                Target("1.5 MP JPEG, faces + default model, decode to answer", 30, target_ms, "ms").as_dict()
            ],
        },
        args,
        started,
    )


if __name__ == "__main__":
    main()

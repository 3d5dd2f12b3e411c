"""The reply to a classification, as data: which images, faces, names and buttons it shows, and
the prediction rows to record. Pure functions over `Outcome`s (no Discord, no database), so the
reply can be tested without either; `bot.render` turns the plan into an embed, `bot.views` into
buttons, and the Classify cog records and sends them.

Faces are tagged `image.face` ("2.1": image 2, face 1), or just the image number when the model
answered the whole picture.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from bot.answering import Outcome
from bot.render import AnswerView, ImageView
from catalog.predictions import AnswerRecord, ImageRecord
from media.encode import encode_png
from models.answer import Answer
from models.memory import encode_embedding


@dataclass(frozen=True)
class ReplyPlan:
    images: list[ImageView]
    buttons: list[tuple[str, int]] = field(default_factory=list)  # (tag, prediction id)
    note: str | None = None
    model_version: str = "?"


def face_tags(result: Answer, number: int) -> list[str]:
    with_faces = any(f.box is not None for f in result.faces)
    return [f"{number}.{i}" if with_faces else str(number) for i in range(1, len(result.faces) + 1)]


def labels_of(outcomes: Sequence[Outcome]) -> list[str]:
    """Every candidate label of the answers, to resolve to catalog names."""
    return [c.label for o in outcomes if o.result for f in o.result.faces for c in f.candidates]


def image_records(outcomes: Sequence[Outcome], threshold: float | None) -> list[ImageRecord]:
    """The prediction rows of the answered images (CPU work: it encodes the face crops, so callers
    run it off the event loop)."""
    records: list[ImageRecord] = []
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            continue
        answers: list[AnswerRecord] = []
        for index, (face, tag) in enumerate(
            zip(result.faces, face_tags(result, outcome.number), strict=True)
        ):
            decided = face.with_threshold(threshold)
            answers.append(
                AnswerRecord(
                    candidates=[(c.label, c.probability) for c in face.candidates],
                    unknown=decided.unknown,
                    face_index=index if face.box is not None else None,
                    box=face.box.rect if face.box is not None else None,
                    # Level 1: a third of level 6's time for 15% more bytes, on the reply's path.
                    crop_png=encode_png(face.crop, compress_level=1) if face.crop is not None else None,
                    threshold=decided.threshold,
                    tag=tag,
                    # kept with the prediction: a label landing on it puts the face in the memory
                    embedding=encode_embedding(face.embedding) if face.embedding is not None else None,
                    kind=decided.kind.value,
                    examples=tuple(c.examples for c in face.candidates),
                )
            )
        records.append(
            ImageRecord(
                sha256=result.sha256,
                answers=answers,
                data=outcome.data,
                width=result.width,
                height=result.height,
                format=result.format,
                url=outcome.source.url if outcome.source.kind != "attachment" else outcome.source.name,
            )
        )
    return records


def compose_reply(
    outcomes: Sequence[Outcome],
    *,
    names: Mapping[str, str],
    threshold: float | None,
    prediction_ids: Sequence[Sequence[int]] = (),
    problems: Sequence[tuple[str, str]] = (),
    dropped: int = 0,
    max_images: int | None = None,
    max_buttons: int = 10,
    model_version: str = "?",
) -> ReplyPlan:
    """What the reply shows. `names`: model label -> display name (labels missing are shown as
    they are); `prediction_ids`: per answered image, the recorded rows of its faces (none: nothing
    was recorded, so no buttons); `problems`: (file name, reason) of attachments that were no
    images; `dropped`: images beyond `max_images` that were not answered."""
    images: list[ImageView] = []
    buttons: list[tuple[str, int]] = []
    answered = 0
    for outcome in outcomes:
        result = outcome.result
        if result is None:
            images.append(ImageView(outcome.number, problem=outcome.problem or "could not be read"))
            continue
        ids = prediction_ids[answered] if answered < len(prediction_ids) else ()
        answered += 1
        views = []
        for j, (face, tag) in enumerate(zip(result.faces, face_tags(result, outcome.number), strict=True)):
            pid = ids[j] if j < len(ids) else None
            decided = face.with_threshold(threshold)
            views.append(
                AnswerView(
                    image_number=outcome.number,
                    face_number=(j + 1) if face.box is not None else None,
                    candidates=[(names.get(c.label, c.label), c.probability) for c in face.candidates],
                    unknown=decided.unknown,
                    prediction_id=pid,
                    kind=decided.kind.value,
                    examples=tuple(c.examples for c in face.candidates),
                )
            )
            if pid is not None:
                buttons.append((tag, pid))
        images.append(ImageView(outcome.number, views, animated=result.animated))
    for name, reason in problems:
        images.append(ImageView(len(images) + 1, problem=f"{name} {reason}"))
    notes = []
    if dropped:
        limit = f" (limit {max_images})" if max_images is not None else ""
        notes.append(f"{dropped} more image(s) not answered{limit}")
    if len(buttons) > max_buttons:
        notes.append(f"buttons for the first {max_buttons} answers")
    version = next((o.result.model_version for o in outcomes if o.result), model_version)
    return ReplyPlan(images, buttons[:max_buttons], "; ".join(notes) or None, version)

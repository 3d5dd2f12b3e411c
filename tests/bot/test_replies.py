"""What a classification reply shows, from outcomes alone: no Discord, no database, no model."""

from __future__ import annotations

import numpy as np

from bot.answering import Outcome
from bot.render import reply_embed
from bot.replies import compose_reply, face_tags, image_records, labels_of
from bot.sources import ImageSource
from media.boxes import Box
from models.answer import Answer, FaceAnswer, Kind
from models.classifier import Candidate


def _face(box: Box | None, *candidates: tuple[str, float], threshold: float = 0.5) -> FaceAnswer:
    ranked = tuple(Candidate(label, p) for label, p in candidates)
    kind = Kind.NAME if ranked and ranked[0].probability >= threshold else Kind.UNKNOWN
    crop = np.zeros((8, 8, 3), np.uint8) if box is not None else None
    return FaceAnswer(box=box, candidates=ranked, kind=kind, threshold=threshold, crop=crop)


def _answer(*faces: FaceAnswer, animated: bool = False) -> Answer:
    return Answer(
        sha256="ab" * 32,
        model_version="v7",
        faces=faces,
        width=64,
        height=48,
        format="JPEG",
        animated=animated,
    )


def _outcome(number: int, result: Answer | None = None, problem: str | None = None) -> Outcome:
    source = ImageSource("link", f"https://i.redd.it/{number}.jpg", f"{number}.jpg")
    return Outcome(number, source, result=result, data=b"bytes" if result else None, problem=problem)


TWO_FACES = _answer(
    _face(Box(1, 2, 10, 10), ("nino", 0.9), ("miku", 0.05)),
    _face(Box(30, 2, 10, 10), ("miku", 0.4), ("nino", 0.3)),
)
WHOLE = _answer(_face(None, ("itsuki", 0.8)), animated=True)


def test_faces_are_tagged_image_dot_face_and_whole_pictures_by_number() -> None:
    assert face_tags(TWO_FACES, 2) == ["2.1", "2.2"]
    assert face_tags(WHOLE, 3) == ["3"]
    assert labels_of([_outcome(1, TWO_FACES), _outcome(2, problem="too large")]) == [
        "nino",
        "miku",
        "miku",
        "nino",
    ]


def test_reply_names_faces_and_gives_buttons_to_recorded_answers() -> None:
    outcomes = [_outcome(1, TWO_FACES), _outcome(2, problem="is not an image"), _outcome(3, WHOLE)]
    plan = compose_reply(
        outcomes,
        names={"nino": "Nino Nakano", "miku": "Miku Nakano"},
        threshold=None,
        prediction_ids=[[11, 12], [13]],
        model_version="ignored: the answers say v7",
    )
    assert plan.model_version == "v7"
    assert plan.buttons == [("1.1", 11), ("1.2", 12), ("3", 13)]
    first, second, third = plan.images
    assert [a.candidates[0][0] for a in first.answers] == ["Nino Nakano", "Miku Nakano"]
    assert [a.unknown for a in first.answers] == [False, True]  # the card's threshold (0.5) decided
    assert second.problem == "is not an image" and not second.answers
    assert third.animated and third.answers[0].face_number is None
    assert third.answers[0].candidates == [("itsuki", 0.8)]  # a label the catalog lacks is shown as is
    text = reply_embed(plan.images, plan.model_version).to_dict()["description"]
    assert "**Nino Nakano** 90%" in text and "not sure (best guess Miku Nakano 40%)" in text
    assert "Image 2**: is not an image" in text


def test_guild_threshold_overrides_and_nothing_recorded_means_no_buttons() -> None:
    plan = compose_reply([_outcome(1, TWO_FACES)], names={}, threshold=0.3)
    assert plan.buttons == [] and plan.note is None
    assert [a.unknown for a in plan.images[0].answers] == [False, False]


def test_limits_are_noted() -> None:
    many = _answer(*(_face(Box(i * 10, 0, 8, 8), ("nino", 0.9)) for i in range(12)))
    plan = compose_reply(
        [_outcome(1, many)],
        names={},
        threshold=None,
        prediction_ids=[list(range(1, 13))],
        problems=[("notes.txt", "is not an image")],
        dropped=3,
        max_images=10,
        max_buttons=10,
    )
    assert len(plan.buttons) == 10
    assert plan.note == "3 more image(s) not answered (limit 10); buttons for the first 10 answers"
    assert plan.images[-1].problem == "notes.txt is not an image" and plan.images[-1].number == 2


def test_prediction_records_carry_tags_crops_and_the_deciding_threshold() -> None:
    records = image_records([_outcome(1, TWO_FACES), _outcome(2, problem="x"), _outcome(3, WHOLE)], 0.35)
    assert [r.url for r in records] == ["https://i.redd.it/1.jpg", "https://i.redd.it/3.jpg"]
    faces = records[0].answers
    assert [a.tag for a in faces] == ["1.1", "1.2"] and [a.face_index for a in faces] == [0, 1]
    assert [a.unknown for a in faces] == [False, False] and faces[1].threshold == 0.35
    assert faces[0].crop_png is not None and faces[0].crop_png.startswith(b"\x89PNG")
    whole = records[1].answers[0]
    assert whole.tag == "3" and whole.face_index is None and whole.box is None and whole.crop_png is None

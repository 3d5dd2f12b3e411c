"""`model.json`, the card beside every `model.onnx`: what the graph expects and how to read its output.

Everything the bot needs to turn logits into an answer lives here (labels, temperature, thresholds,
the open-set thresholds fitted with the character memory in `memory.npz`), so that a version folder
is self-contained and never depends on the trainer's code or run folder.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from models import preprocess
from models.errors import ModelLoadError
from models.openset import OpenSetThresholds

CARD_NAME = "model.json"
ONNX_NAME = "model.onnx"
INT8_NAME = "model.int8.onnx"
# A version of several members: member 1's own graph, which looks at every face first.
FIRST_NAME = "member-1.onnx"
FIRST_INT8_NAME = "member-1.int8.onnx"
CARD_FORMAT = 1
DEFAULT_THRESHOLD = 0.5
# Registry version ids: a zero-padded sequence number (sorts as text) and the UTC minute of creation.
VERSION_RE = re.compile(r"^v(?P<number>\d{4,})-(?P<stamp>\d{8}T\d{4})$")


class InputSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = preprocess.INPUT_NAME
    layout: str = preprocess.INPUT_LAYOUT
    dtype: str = preprocess.INPUT_DTYPE


class Thresholds(BaseModel):
    """Probability below which the top answer is "unknown": per class when calibrated per class,
    else the global value, else `DEFAULT_THRESHOLD`."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    global_threshold: float | None = Field(default=None, alias="global", ge=0.0, le=1.0)
    per_class: dict[str, float] = Field(default_factory=dict)

    @field_validator("per_class")
    @classmethod
    def _in_unit_interval(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {label: t for label, t in value.items() if not 0.0 <= t <= 1.0}
        if bad:
            raise ValueError(f"per-class thresholds outside [0, 1]: {bad}")
        return value

    @classmethod
    def coerce(cls, value: Thresholds | float | dict[str, Any] | None) -> Thresholds:
        """Accept what a trainer naturally has: one float, a per-class dict, or the JSON form."""
        if value is None:
            return cls()
        if isinstance(value, Thresholds):
            return value
        if isinstance(value, int | float):
            return cls(global_threshold=float(value))
        if isinstance(value, dict) and ({"global", "per_class"} & value.keys() or not value):
            return cls.model_validate(value)
        if isinstance(value, dict):
            return cls(per_class={str(k): float(v) for k, v in value.items()})
        raise TypeError(f"thresholds must be a float, a dict or Thresholds, not {type(value).__name__}")

    def for_label(self, label: str) -> float:
        if label in self.per_class:
            return self.per_class[label]
        return self.default

    @property
    def default(self) -> float:
        return DEFAULT_THRESHOLD if self.global_threshold is None else self.global_threshold


class GraphAgreement(BaseModel):
    """How closely one graph answers like another on the same faces (`models.int8.agreement`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    images: int = Field(ge=1)
    sure_images: int = Field(ge=0)  # of those, the faces the reference is sure of (models.int8.SURE)
    top1_agreement: float = Field(ge=0.0, le=1.0)  # on the faces it is sure of (1.0 when none)
    cosine_median: float = Field(ge=-1.0, le=1.0)  # embedding cosine, every face
    cosine_min: float = Field(ge=-1.0, le=1.0)


class Int8Graph(GraphAgreement):
    """The int8 graph beside the float one (`model.int8.onnx`, see `models.int8`): its hash, and
    how closely it answered like the float graph on validation faces when it was made."""

    sha256: str
    # The same on `models.int8.probe_batch` where it was made: readers compare their own run with it.
    probe_cosine_min: float = Field(ge=-1.0, le=1.0)


class FirstLook(BaseModel):
    """A version of several training runs (`NAMAE_TRAIN__MEMBERS`): member 1's graph answers every
    face first, by bars fitted for it alone; a face it lands near one of them is answered by every
    member (`model.onnx`), as a version without a first look answers. Member 1's vector is columns
    of the memory's (`columns`: [start, end) and the factor that gives them unit length), so one
    memory serves both (`models.open_world`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    members: int = Field(ge=2)
    sha256: str  # of FIRST_NAME
    int8: Int8Graph | None = None  # FIRST_INT8_NAME, as the card's own `int8`
    temperature: float = Field(default=1.0, gt=0.0)  # member 1's head's own calibration
    open_set: OpenSetThresholds  # member 1's bars, fitted on its own looks
    columns: list[tuple[int, int, float]] = Field(min_length=1)
    margins: tuple[float, float]  # (evidence, confidence): this near a bar, every member answers

    @model_validator(mode="after")
    def _sane(self) -> FirstLook:
        if any(not 0 <= start < end or factor <= 0.0 for start, end, factor in self.columns):
            raise ValueError(f"first-look columns {self.columns} are not ranges with a positive factor")
        if min(self.margins) < 0.0:
            raise ValueError(f"first-look margins {self.margins} must not be negative")
        return self

    @property
    def width(self) -> int:
        """The width of member 1's vector (the memory's columns it reads)."""
        return sum(end - start for start, end, _ in self.columns)


def default_preprocessing() -> dict[str, Any]:
    """How `models.preprocess.prepare` shapes an image; recorded so that a card documents itself."""
    return {
        "function": "models.preprocess.prepare",
        "square_pad": True,
        "pad_value": preprocess.PAD_VALUE,
        "resize": "bilinear",
        "scale": 1.0 / 255.0,
        "mean": list(preprocess.MEAN),
        "std": list(preprocess.STD),
        "normalization": "in_graph",
    }


class ModelCard(BaseModel):
    """The parsed `model.json`."""

    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    format: int = CARD_FORMAT
    version: str
    labels: list[str] = Field(min_length=1)
    image_size: int = Field(gt=0, le=4096)
    input: InputSpec = Field(default_factory=InputSpec)
    outputs: list[str] = Field(default_factory=lambda: list(preprocess.OUTPUT_NAMES))
    embedding_dim: int | None = Field(default=None, gt=0)
    preprocessing: dict[str, Any] = Field(default_factory=default_preprocessing)
    temperature: float = Field(default=1.0, gt=0.0)
    thresholds: Thresholds = Field(default_factory=Thresholds)
    # Fitted with the character memory (memory.npz beside the card); None: the head alone answers.
    open_set: OpenSetThresholds | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    dataset_fingerprint: str | None = None
    parent: str | None = None
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    backbone: str | None = None
    onnx_sha256: str | None = None
    int8: Int8Graph | None = None  # None: the version has the float graph only
    # A version of several members: member 1 answers first (None: the graph answers every face).
    first_look: FirstLook | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    @field_validator("labels")
    @classmethod
    def _unique_labels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            dupes = sorted({label for label in value if value.count(label) > 1})
            raise ValueError(f"labels repeat: {dupes}")
        if any(not label.strip() for label in value):
            raise ValueError("a label is empty")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.format != CARD_FORMAT:
            raise ValueError(f"card format {self.format} is not supported (this code reads {CARD_FORMAT})")
        unknown = sorted(set(self.thresholds.per_class) - set(self.labels))
        if unknown:
            raise ValueError(f"per-class thresholds name labels the model lacks: {unknown}")
        expected = InputSpec()
        if self.first_look is not None and self.open_set is None:
            raise ValueError("a first look needs the open-set thresholds it hands faces over to")
        if self.input != expected:
            raise ValueError(
                f"input {self.input.model_dump()} differs from this code's {expected.model_dump()}"
            )
        if tuple(self.outputs) != preprocess.OUTPUT_NAMES:
            raise ValueError(f"outputs {self.outputs} differ from {list(preprocess.OUTPUT_NAMES)}")
        return self

    @property
    def test_macro_f1(self) -> float | None:
        value = self.metrics.get("test_macro_f1")
        return float(value) if isinstance(value, int | float) else None

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json", by_alias=True), indent=2, ensure_ascii=False) + "\n"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_card(text: bytes | str, where: str, *, expect_version: str | None = None) -> ModelCard:
    """A card from its bytes (`where` names it in errors): valid JSON, a valid card, the version
    its folder or key says."""
    try:
        raw = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{where} is not readable JSON: {exc}") from exc
    try:
        card = ModelCard.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'card'}: {err['msg']}" for err in exc.errors()
        )
        raise ModelLoadError(f"{where} is not a valid model card: {problems}") from exc
    if expect_version is not None and card.version != expect_version:
        raise ModelLoadError(f"{where} says version {card.version!r} but its folder is {expect_version!r}")
    return card


def read_card(folder: Path, *, expect_version: str | None = None, verify_hash: bool = True) -> ModelCard:
    """The card of a version folder, checked against the folder: its name, and the ONNX file's hash."""
    card_path = folder / CARD_NAME
    onnx_path = folder / ONNX_NAME
    if not folder.is_dir():
        raise ModelLoadError(f"model folder {folder} does not exist")
    if not card_path.is_file():
        raise ModelLoadError(f"{folder} has no {CARD_NAME}: not a model version folder")
    if not onnx_path.is_file():
        raise ModelLoadError(f"{folder} has no {ONNX_NAME}")
    try:
        text = card_path.read_bytes()
    except OSError as exc:
        raise ModelLoadError(f"{card_path} is not readable JSON: {exc}") from exc
    card = parse_card(text, str(card_path), expect_version=expect_version)
    if verify_hash and card.onnx_sha256 is not None:
        actual = sha256_file(onnx_path)
        if actual != card.onnx_sha256:
            raise ModelLoadError(
                f"{onnx_path} does not match its card (sha256 {actual[:12]}..., card says "
                f"{card.onnx_sha256[:12]}...): the folder was modified after export"
            )
    listed = [(INT8_NAME, card.int8.sha256 if card.int8 is not None else None)]
    if card.first_look is not None:
        first = card.first_look
        listed += [(FIRST_NAME, first.sha256), (FIRST_INT8_NAME, first.int8.sha256 if first.int8 else None)]
    for name, sha256 in listed:
        path = folder / name
        if sha256 is None:
            continue
        if not path.is_file():
            raise ModelLoadError(f"{folder} has no {name}, which its card lists")
        if verify_hash and sha256_file(path) != sha256:
            raise ModelLoadError(
                f"{path} does not match its card (card says {sha256[:12]}...): "
                "the folder was modified after export"
            )
    return card

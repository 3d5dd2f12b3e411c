"""What `namae demo` found (each held-back picture's answer, the run's figures) and the report
folder it writes from them: summary.json, summary.md, conversation.md and the training run's report.

`ReportWriter` is mixed into `namae.demo.Demo`, whose `result` and `conversation` it reads.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from catalog.characters import slugify


@dataclass
class Answer:
    member: str
    picture: str
    truth: str
    answer: str
    confidence: float
    not_sure: bool
    prediction_id: int | None = None
    reply_id: int | None = None

    @property
    def correct(self) -> bool:
        return not self.not_sure and slugify(self.answer) == slugify(self.truth)


@dataclass
class DemoResult:
    answers: list[Answer] = field(default_factory=list)
    scene_faces: list[Answer] = field(default_factory=list)
    model_version: str | None = None
    train_metrics: dict[str, Any] = field(default_factory=dict)
    scrape: dict[str, Any] = field(default_factory=dict)
    correction: dict[str, Any] = field(default_factory=dict)
    newcomer: dict[str, Any] = field(default_factory=dict)  # added after training, named from examples
    stranger: dict[str, Any] = field(default_factory=dict)  # never added: "a character I don't know"
    seconds: dict[str, float] = field(default_factory=dict)
    report_dir: Path | None = None

    @property
    def accuracy(self) -> float:
        return sum(a.correct for a in self.answers) / len(self.answers) if self.answers else 0.0


class ReportWriter:
    def write_report(self, out: Path) -> None:
        result = self.result
        runs = sorted((out / "data" / "runs").glob("*/report.md")) if (out / "data" / "runs").exists() else []
        if runs:
            shutil.copytree(
                runs[-1].parent, out / "training", ignore=shutil.ignore_patterns("*.pt", "*.ckpt")
            )
        (out / "conversation.md").write_text(
            "# The demo's Discord conversation\n\n" + "\n\n".join(self.conversation) + "\n"
        )
        summary = {
            "model_version": result.model_version,
            "held_back_pictures": len(result.answers),
            "correct": sum(a.correct for a in result.answers),
            "not_sure": sum(a.not_sure for a in result.answers),
            "accuracy": round(result.accuracy, 4),
            "scene_faces": [asdict(a) | {"correct": a.correct} for a in result.scene_faces],
            "train_metrics": result.train_metrics,
            "scrape": result.scrape,
            "correction": result.correction,
            "newcomer": result.newcomer,
            "stranger": result.stranger,
            "seconds": {k: round(v, 1) for k, v in result.seconds.items()},
            "answers": [asdict(a) | {"correct": a.correct} for a in result.answers],
        }
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
        lines = [
            "# namae demo summary",
            "",
            f"- model: `{result.model_version}`; test macro-F1 {result.train_metrics.get('test_macro_f1', 'n/a')}",
            f"- held-back pictures answered correctly: {summary['correct']}/{summary['held_back_pictures']} ({result.accuracy:.1%}); not sure: {summary['not_sure']}",
            f"- correction: {result.correction}",
            f"- added after training: {_open_world_line(result.newcomer)}",
            f"- never added: {_open_world_line(result.stranger)}",
            f"- time: {summary['seconds']}",
            "",
            "| picture | posted by | truth | bot's answer | confidence | correct |",
            "|---|---|---|---|---|---|",
        ]
        for a in [*result.answers, *result.scene_faces]:
            answer = "not sure" if a.not_sure else a.answer
            lines.append(
                f"| {a.picture} | {a.member} | {a.truth} | {answer} | {a.confidence:.0%} | {'yes' if a.correct else 'no'} |"
            )
        (out / "summary.md").write_text("\n".join(lines) + "\n")


KIND_WORDS = {"name": "named", "pair": "one of two", "stranger": "a character I don't know",
              "not_character": "not a character"}  # fmt: skip


def _open_world_line(part: dict[str, Any]) -> str:
    if not part:
        return "not run"
    answers = ", ".join(
        f"{KIND_WORDS.get(a['kind'], a['kind'])}{' ' + a['answer'] if a['kind'] == 'name' else ''}"
        for a in part.get("answers", [])
    )
    known = f" (from {part['faces_in_memory']} examples)" if "faces_in_memory" in part else ""
    return f"{part['name']}{known}: {answers}"

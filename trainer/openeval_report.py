"""What `namae eval` writes: report.json, report.md and the plots (confusion matrix with a "not
named" column, coverage against precision, answer kinds per set, the few-shot curve, mistakes)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from models.openset import Kind
from trainer import report
from trainer.openeval_answers import NOT_NAMED, Pictures

CONFUSION_PNG = "confusion_matrix.png"
CURVE_PNG = "coverage_precision.png"
KINDS_PNG = "answer_kinds.png"
FEW_SHOT_PNG = "few_shot.png"
MISTAKES_PNG = "mistakes.png"
KIND_WORDS = {
    Kind.NAME.value: "named",
    Kind.PAIR.value: "one of these two",
    Kind.STRANGER.value: "a character I don't know",
    Kind.NOT_CHARACTER.value: "not a character",
}


def write(result: dict[str, Any], known: Pictures, out: Path) -> Path:
    """Plots, report.json and report.md in `out`; returns the markdown's path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = result.pop("_plots")
    labels = result["labels"]
    _confusion(labels, plots["known_truth"], plots["known_pred"], out / CONFUSION_PNG)
    _curve(result["curve"], out / CURVE_PNG)
    _kinds(result, out / KINDS_PNG)
    if "few_shot" in result:
        _few_shot(result["few_shot"], out / FEW_SHOT_PNG)
    wrong = [
        i
        for i, (t, p) in enumerate(zip(plots["known_truth"], plots["known_pred"], strict=True))
        if p is not None and p != t
    ]
    wrong.sort(key=lambda i: -plots["decisions"][i].candidates[0].probability)
    captions = [
        {
            "true": plots["known_truth"][i],
            "predicted": plots["known_pred"][i],
            "confidence": plots["decisions"][i].candidates[0].probability,
        }
        for i in wrong[:16]
    ]
    report.plot_mistakes(
        captions,
        [known.images[i] for i in wrong[:16]],
        out / MISTAKES_PNG,
        title="named wrongly, most confident first" if wrong else "no known character was named wrongly",
    )
    curve = result.pop("curve")
    (out / "report.json").write_text(json.dumps({**result, "curve": curve}, indent=1, default=float))
    path = out / "report.md"
    path.write_text("\n".join(markdown(result)) + "\n")
    return path


def _confusion(labels: list[str], truth: list[str], predicted: list[str | None], path: Path) -> None:
    # the model may know characters the known folder has no pictures of, and name them
    others = sorted({p for p in predicted if p is not None} - set(labels))
    names = [*labels, *others, NOT_NAMED]
    index = {name: i for i, name in enumerate(names)}
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for t, p in zip(truth, predicted, strict=True):
        matrix[index[t], index[p if p is not None else NOT_NAMED]] += 1
    report.plot_confusion(matrix.tolist(), names, path, "known characters: answers (rows: truth)")


def _curve(curve: dict[str, list[float]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4.5), layout="constrained")
    ax.plot(curve["coverage_today"], curve["precision_today"], label="today: the head alone", color="grey")
    ax.plot(curve["coverage"], curve["precision"], label="head + memory (past the stranger gate)")
    ax.set_xlabel("coverage (share of known faces named)")
    ax.set_ylabel("precision of the names given")
    ax.set_ylim(0.8, 1.0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _kinds(result: dict[str, Any], path: Path) -> None:
    sets = [(name, result[key]["kinds"]) for key, name in (("known", "known"), ("unknown", "unknown"),
            ("not_characters", "not characters")) if key in result]  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 3.5), layout="constrained")
    for row, (name, kinds) in enumerate(sets):
        left = 0.0
        for kind, words in KIND_WORDS.items():
            share = kinds.get(kind, 0.0)
            ax.barh(row, share, left=left, label=words if row == 0 else None)
            left += share
    ax.set_yticks(range(len(sets)), [name for name, _ in sets])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of pictures")
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=4, fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _few_shot(few: dict[str, Any], path: Path) -> None:
    shots = sorted(int(k) for k in few["by_shots"])
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    for key, words in (("top1", "top-1 among every character"), ("top1_among_new", "top-1 among the new ones"),
                       ("named_right", "named, and right")):  # fmt: skip
        ax.plot(shots, [few["by_shots"][str(k)][key] for k in shots], marker="o", label=words)
    if all("strangers_named" in row for row in few["by_shots"].values()):
        ax.plot(shots, [few["by_shots"][str(k)]["strangers_named"] for k in shots], marker="x", linestyle="--",
                label="strangers named, half the new ones added")  # fmt: skip
    ax.set_xscale("log")
    ax.set_xticks(shots, [str(k) for k in shots])
    ax.set_xlabel("labelled faces of each new character in the memory")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _growth(row: dict[str, float]) -> str:
    if "strangers_named" not in row:
        return "–"
    return f"{_pct(row.get('strangers_named_before'))} -> {_pct(row['strangers_named'])}"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def markdown(result: dict[str, Any]) -> list[str]:
    known = result["known"]
    new, old = known["answer"], known["today"]
    th = result["thresholds"]
    lines = [
        f"# Open-world evaluation of {result['version']}",
        "",
        f"Answered with its {result.get('graph', 'float')} graph.",
        "",
        (
            f"Thresholds from the model card (target precision {th['target_precision']:.2f}): name at "
            f"confidence >= {th['name']:.3f}, stranger below evidence {th['known']:.3f}, not a character "
            f"below similarity {th['not_character']:.3f}. Today's answer: the head's calibrated top "
            "probability against the card's threshold, no memory."
        ),
        "",
        "| figure | head + memory | today |",
        "|---|---:|---:|",
        f"| known: coverage | {_pct(new['coverage'])} | {_pct(old['coverage'])} |",
        f"| known: precision of names | {_pct(new['precision'])} | {_pct(old['precision'])} |",
        f"| known: macro-F1 (not named counts as wrong) | {new['macro_f1']:.4f} | {old['macro_f1']:.4f} |",
    ]
    if "unknown" in result:
        u = result["unknown"]
        lines += [
            f"| unknown characters named | {_pct(u['named'])} | {_pct(u['named_today'])} |",
            f"| AUROC known vs unknown | {u['auroc'] or 0:.3f} | {u['auroc_today'] or 0:.3f} |",
        ]
    if "not_characters" in result:
        n = result["not_characters"]
        lines += [
            f"| not-characters named | {_pct(n['named'])} | {_pct(n['named_today'])} |",
            f"| AUROC known vs not-characters | {n['auroc'] or 0:.3f} | {n['auroc_today'] or 0:.3f} |",
        ]
    if "posts" in result:
        p = result["posts"]
        a, none = p["answer"], p["no_face"]
        lines += [
            (
                f"| posts ({p['pictures']}, as the bot sees them): no face found | "
                f"{_pct(p['no_face_found'])} | – |"
            ),
            (
                f"| posts: named / precision of names / macro-F1 | {_pct(a['coverage'])} / "
                f"{_pct(a['precision'])} / {a['macro_f1']:.4f} | – |"
            ),
            (
                f"| posts with no face found: named / named right | {_pct(none['named'])} / "
                f"{_pct(none['named_right'])} | – |"
            ),
        ]
    lines += [
        "",
        (
            f"Known characters: {known['pictures']} pictures; closed-set macro-F1 (always the top "
            f"candidate) {known['closed_set_macro_f1']:.4f}; 'one of these two' holds the right character "
            f"in {_pct(known['pair_holds_truth'])} of those answers."
        ),
        "",
        "## Answer kinds",
        "",
        "| set | " + " | ".join(KIND_WORDS.values()) + " |",
        "|---|" + "---:|" * len(KIND_WORDS),
    ]
    for key, name in (("known", "known"), ("unknown", "unknown"), ("not_characters", "not characters")):
        if key in result:
            kinds = result[key]["kinds"]
            lines.append(f"| {name} | " + " | ".join(_pct(kinds.get(k, 0.0)) for k in KIND_WORDS) + " |")
    looks = [(name, result[key]["second_looks"]) for key, name in (("known", "known"), ("unknown", "unknown"))
             if key in result and result[key].get("second_looks")]  # fmt: skip
    if looks:
        lines += [
            "",
            "Decided on a second look (the face and its mirror image, near a bar): "
            + ", ".join(f"{name} {_pct(share)}" for name, share in looks)
            + ".",
        ]
    members = result.get("members", 1)
    handed = [(name, result[key].get("every_member")) for key, name in (("known", "known"), ("unknown", "unknown"))
              if key in result]  # fmt: skip
    if members > 1 and all(share is not None for _, share in handed):
        lines += [
            "",
            f"Decided by all {members} members (near one of member 1's bars; member 1 alone decides the "
            "rest): " + ", ".join(f"{name} {_pct(share)}" for name, share in handed) + ".",
        ]
    if result.get("unknown", {}).get("by_character"):
        lines += [
            "",
            "## Characters the model does not know",
            "",
            "Who each is mistaken for (a stranger named often, and mostly as one character, is the one to add):",
            "",
            "| character | pictures | named as someone | most often as |",
            "|---|---:|---:|---|",
        ]
        for character, row in result["unknown"]["by_character"].items():
            mistaken = ", ".join(f"{name} {_pct(share)}" for name, share in row["as"].items()) or "–"
            lines.append(f"| {character} | {row['pictures']} | {_pct(row['named'])} | {mistaken} |")
    if "few_shot" in result:
        few = result["few_shot"]
        lines += [
            "",
            "## New characters from a few labelled faces (no retrain)",
            "",
            f"{len(few['characters'])} characters, {few['draws']} draws; held-out faces per character: "
            + ", ".join(f"{c} {n}" for c, n in few["held_out_per_character"].items()),
            "",
            "The last two columns: half the new characters (at random) added from that many faces, every",
            "picture of the other half answered: strangers named (before -> after), and named as one just added.",
            "",
            (
                "| faces in memory | top-1 among all | top-1 among the new | named and right | named wrongly "
                "| known macro-F1 | strangers named | ... as one just added |"
            ),
            "|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for k, row in few["by_shots"].items():
            lines.append(
                f"| {k} | {_pct(row['top1'])} | {_pct(row['top1_among_new'])} | {_pct(row['named_right'])} "
                f"| {_pct(row['named_wrong'])} | {row['known_macro_f1']:.4f} "
                f"| {_growth(row)} "
                f"| {_pct(row['strangers_named_as_added']) if 'strangers_named_as_added' in row else '–'} |"
            )
    lines += ["", "## Per character (known)", "", "| character | precision | recall | F1 | pictures |",
              "|---|---:|---:|---:|---:|"]  # fmt: skip
    for label, row in new["per_class"].items():
        lines.append(
            f"| {label} | {row['precision']:.3f} | {row['recall']:.3f} | {row['f1']:.3f} | {row['support']} |"
        )
    lines += ["", "## Plots", ""]
    lines += [f"![{p}]({p})" for p in (CONFUSION_PNG, CURVE_PNG, KINDS_PNG, FEW_SHOT_PNG, MISTAKES_PNG)
              if p != FEW_SHOT_PNG or "few_shot" in result]  # fmt: skip
    return lines

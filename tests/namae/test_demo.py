"""The demo end to end at a small size: fake Reddit and Discord, the real worker (child processes),
trainer, registry and bot. What `make demo` does, with fewer pictures and epochs."""

import json
from pathlib import Path

import pytest
from rich.console import Console

from catalog.errors import CatalogError
from namae.demo import DemoOptions, prepare_out, run_demo


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_small_demo_answers_every_held_back_picture_and_writes_a_report(
    tmp_path: Path, cascade_path: Path
) -> None:
    out = tmp_path / "report"
    options = DemoOptions(
        characters=3, images=6, held_back=2, epochs=3, image_size=64, out=out, cascade=cascade_path
    )
    with open(tmp_path / "console.txt", "w") as log:
        result = run_demo(options, Console(file=log, width=100))

    assert len(result.answers) == 6, "every held-back picture got an answer"
    assert all(a.prediction_id is not None for a in result.answers)
    assert result.model_version is not None
    assert result.scrape["new"] > 0 and sum(result.scrape["rejected"].values()) > 0
    assert result.correction["label_in_catalog"] is True
    summary = json.loads((out / "summary.json").read_text())
    assert summary["held_back_pictures"] == 6 and summary["correct"] == sum(a.correct for a in result.answers)
    for name in ("summary.md", "conversation.md", "training/report.md", "training/report.json"):
        assert (out / name).is_file(), name
    assert len(list((out / "training").glob("*.png"))) >= 3
    conversation = (out / "conversation.md").read_text()
    assert "/character add" in conversation and "/retrain" in conversation
    # the open world: a character added after training, known from its scraped faces without a
    # retrain, and one never added
    assert result.newcomer["faces_in_memory"] >= 5
    assert len(result.newcomer["answers"]) == len(result.stranger["answers"]) == 3
    assert all(a["kind"] in ("name", "pair", "stranger", "not_character") for a in result.stranger["answers"])
    assert summary["newcomer"]["name"] in conversation and "Known: from" in conversation


def test_demo_never_deletes_a_folder_it_did_not_make(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    with pytest.raises(CatalogError, match="was not made by `namae demo`"):
        prepare_out(precious)
    assert (precious / "thesis.txt").exists()
    made = prepare_out(tmp_path / "fresh")
    (made / "old.txt").write_text("x")
    assert not (prepare_out(made) / "old.txt").exists()

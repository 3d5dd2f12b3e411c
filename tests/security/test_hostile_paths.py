"""The hostile-file corpus through every path that decodes pictures, end to end.

`tests/security/test_hostile_decode.py` runs the corpus through `decode_image` alone; here each
product entry point gets the same files and must handle or refuse every one of them with its
reason, in bounded time, without crashing and without leaving anything half-stored:

- folder import (`scraper.folder.import_folder`): refused files are catalog rows with their reason;
- the trainer reading a folder (`trainer.run.train_run(from_folder=...)`): skipped, logged, counted;
- the bot (real discord.py against the fake Discord): one reply naming the image and the reason;
- `namae classify`: a per-file error, exit status 1, the good files still answered.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from catalog.db import session_scope
from catalog.schema import Image, ImageStatus, Prediction
from catalog.settings import ImageLimits, Settings
from catalog.store import ImageStore, sha256_of
from media.decode import ImageRejected, decode_image
from media.trailing import without_trailing_data
from namae.cli import app
from sandbox.characters.render import render_character
from sandbox.characters.traits import make_characters
from scraper.folder import import_folder
from scraper.rejections import reject_code
from tests.fixtures.bot import BotHarness, jpeg
from tests.fixtures.model import TinyModel
from tests.hostile_files import EXPECTED, HOSTILE_CASES
from tests.trainer.conftest import draw_folder, tiny_settings
from trainer.run import train_run

REPO = Path(__file__).resolve().parents[2]
# Post to recorded reply, per message: a bomb must not stall the bot (slack for a busy machine).
BOT_REPLY_WAIT_S = 60.0  # how long each reply is waited for (a deadline, not an asserted bound)
REJECTED = {name: reason for name, reason in EXPECTED.items() if reason is not None}
ACCEPTED = sorted(name for name, reason in EXPECTED.items() if reason is None)
# A plain phrase of each reason that a person reads in the refusal (the decoder's own sentence).
PLAIN_WORDS = {
    "empty": "empty",
    "truncated": "truncated",
    "decompression_bomb": "pixels",
    "not_an_image": "not an image",
    "unsupported_format": "not supported",
    "bad_aspect": "aspect ratio",
    "too_small": "at least",
    "too_many_frames": "frames",
}
assert set(REJECTED.values()) <= set(PLAIN_WORDS)


def hostile_name(case: str) -> str:
    # Every file claims to be a picture by its name: the decoder must go by the bytes alone.
    return f"hostile_{case}.jpg"


def plant_corpus(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    planted = {}
    for case, make in HOSTILE_CASES.items():
        path = folder / hostile_name(case)
        path.write_bytes(make())
        planted[case] = path
    return planted


def refusal(data: bytes, limits: ImageLimits) -> ImageRejected:
    with pytest.raises(ImageRejected) as caught:
        decode_image(data, limits)
    return caught.value


# --- (a) folder import -----------------------------------------------------------------------------


def test_folder_import_records_every_hostile_file_with_its_reason(
    settings: Settings, sqlite_engine: Engine, tmp_path: Path
) -> None:
    root = tmp_path / "dataset"
    specs = make_characters(2, seed=31)
    good: dict[str, list[bytes]] = {}
    for number, spec in enumerate(specs):
        folder = root / spec.slug
        folder.mkdir(parents=True)
        good[spec.slug] = []
        for variant in range(4):
            image, _ = render_character(spec, np.random.default_rng([31, number, variant]), 128)
            path = folder / f"pic_{variant:02d}.jpg"
            image.convert("RGB").save(path, "JPEG", quality=90)
            good[spec.slug].append(path.read_bytes())
    planted = plant_corpus(root / specs[0].slug)

    started = time.perf_counter()
    summary = import_folder(settings, sqlite_engine, root)
    elapsed = time.perf_counter() - started
    totals = summary.totals
    print(f"\nfolder import of {totals.seen} files ({len(HOSTILE_CASES)} hostile): {elapsed:.2f} s")
    assert totals.errors == 0
    assert dict(totals.rejected) == dict(Counter(REJECTED.values()))

    store = ImageStore.from_settings(settings)
    with session_scope(sqlite_engine) as session:
        by_sha = {image.sha256: image for image in session.scalars(select(Image))}
        for case, path in planted.items():
            data = path.read_bytes()
            # A refusal is keyed by the bytes received; a kept image by its own bytes, without anything
            # appended after its end.
            image = by_sha.get(sha256_of(data if case in REJECTED else without_trailing_data(data)))
            assert image is not None, f"{case}: no catalog row"
            assert any(p.url.endswith("/" + hostile_name(case)) for p in image.provenance), case
            if case in REJECTED:
                assert image.status == ImageStatus.rejected, case
                assert reject_code(image.reject_reason) == REJECTED[case], (case, image.reject_reason)
                # The stored reason is the sentence a moderator reads, not just the code.
                assert PLAIN_WORDS[REJECTED[case]] in image.reject_reason.lower(), image.reject_reason
                assert not image.stored and not store.has(image.sha256), case
            else:
                # Accepted: kept, or recognised as a near copy of a kept picture (the EXIF rotations
                # of one picture, the JPEG with a ZIP appended beside the plain JPEG).
                assert image.status in (ImageStatus.accepted, ImageStatus.review, ImageStatus.duplicate)
                assert image.stored == (image.status != ImageStatus.duplicate), case
                if image.stored:
                    assert b"PK\x03\x04" not in store.read(image.sha256), f"{case}: appended ZIP was stored"
        for slug, pictures in good.items():
            for data in pictures:
                image = by_sha[sha256_of(data)]
                assert image.status == ImageStatus.accepted and image.stored, slug
    assert store.check(sqlite_engine, verify=True).clean


# --- (b) the trainer reading a folder ---------------------------------------------------------------


def test_trainer_skips_hostile_files_and_counts_them(tmp_path: Path, cascade_path: Path) -> None:
    root = tmp_path / "dataset"
    names = draw_folder(root, {0: 8, 1: 8, 2: 8}, size=96, seed=41)
    planted = plant_corpus(root / names[0])
    settings = tiny_settings(tmp_path / "data", cascade_path, image_size=32, epochs=1)

    started = time.perf_counter()
    result = train_run(settings, None, from_folder=root, progress=False, register=False)
    elapsed = time.perf_counter() - started
    print(f"\ntraining from a folder with {len(planted)} hostile files: {elapsed:.2f} s")

    report = json.loads(result.report_path.read_text())
    skipped = report["dataset"]["skipped"]
    assert {k: v for k, v in skipped.items() if k.startswith("rejected:")} == {
        f"rejected:{reason}": count for reason, count in Counter(REJECTED.values()).items()
    }
    assert "unreadable" not in skipped
    assert sorted(report["labels"]) == sorted(names)
    assert 0.0 <= result.metrics["test_macro_f1"] <= 1.0
    # The run's own log (train.log in the run folder) says what was skipped and why, file by file.
    logged = (result.run_dir / "train.log").read_text()
    for case, reason in REJECTED.items():
        # One line per file, naming the file and the reason.
        line = next((ln for ln in logged.splitlines() if hostile_name(case) in ln), None)
        assert line is not None, f"{case}: no log line"
        assert f"({reason})" in line, line
    for case in ACCEPTED:
        assert hostile_name(case) not in logged, case


# --- (c) the bot --------------------------------------------------------------------------------------


def content_type_for(case: str) -> str:
    for prefix, kind in (("png", "image/png"), ("gif", "image/gif"), ("webp", "image/webp")):
        if case.startswith(prefix) or f"_{prefix}" in case:
            return kind
    return "image/jpeg"


async def test_bot_answers_each_hostile_attachment_plainly_and_keeps_going(harness: BotHarness) -> None:
    limits = harness.settings.images
    good = jpeg(1, 61)
    posted: dict[str, int] = {}
    replies = {}
    seconds: dict[str, float] = {}
    for case, make in HOSTILE_CASES.items():
        started = time.perf_counter()
        # The hostile file first, then a good picture: the reply must keep them apart.
        posted[case] = await harness.post(
            (hostile_name(case), make(), content_type_for(case)), ("good.jpg", good, "image/jpeg")
        )
        replies[case] = await harness.reply_to(posted[case], timeout=BOT_REPLY_WAIT_S)
        seconds[case] = time.perf_counter() - started
    slowest = sorted(seconds.items(), key=lambda item: -item[1])[:3]
    print(
        f"\nbot: {len(posted)} messages with a hostile attachment answered in {sum(seconds.values()):.2f} s; "
        f"slowest: {', '.join(f'{case} {s:.2f} s' for case, s in slowest)}"
    )

    for case, message in posted.items():
        assert [m.id for m in harness.fake.sent_messages if m.reply_to == message] == [replies[case].id]
        lines = replies[case].text().splitlines()
        first = next(line for line in lines if line.startswith("**Image 1**"))
        second = next(line for line in lines if line.startswith("**Image 2**"))
        assert "face" in second or "%" in second, (case, second)
        if case in REJECTED:
            detail = refusal(HOSTILE_CASES[case](), limits).detail.rstrip(".")
            assert first == f"**Image 1**: {detail[0].lower()}{detail[1:]}", (case, first)
            assert PLAIN_WORDS[REJECTED[case]] in first.lower(), first
        else:
            # Answered as any picture is: a name or a guess, or (a plain picture with no face) "not
            # a character" from the open-set answer.
            answered = ("%", "no guess", "not a character", "a character I don't know")
            assert any(words in first for words in answered), (case, first)

    # Still answering afterwards, and nothing of the refused files was kept.
    after = await harness.post(("after.jpg", jpeg(2, 62), "image/jpeg"))
    assert "%" in (await harness.reply_to(after)).text()
    refused = {sha256_of(HOSTILE_CASES[case]()) for case in REJECTED}
    with session_scope(harness.engine) as session:
        kept = set(session.scalars(select(Image.sha256)))
        assert not kept & refused
        assert session.scalar(select(Prediction.id).where(Prediction.reply_message_id.is_(None))) is None
    assert harness.bot is not None and not harness.bot.is_closed()
    bot_store = ImageStore.from_settings(harness.settings)
    assert bot_store.check(harness.engine, verify=True).clean
    # The JPEG with a ZIP appended was answered, and only the JPEG itself was kept.
    assert not [name for name in bot_store.names() if b"PK\x03\x04" in bot_store.read(name)]


# --- (d) namae classify ---------------------------------------------------------------------------------


@pytest.fixture
def classify_env(
    tmp_path: Path, cascade_path: Path, tiny_model: TinyModel, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    data = tmp_path / "data"
    data.mkdir()
    shutil.copytree(tiny_model.registry_root, data / "models")
    values = {
        "NAMAE_DATA_DIR": str(data),
        "NAMAE_FACES__CASCADE_PATH": str(cascade_path),
        "NAMAE_CONFIG": str(tmp_path / "absent.toml"),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("NAMAE_DATABASE_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    return values


def test_classify_reports_each_hostile_file_and_answers_the_good_ones(
    tmp_path: Path, classify_env: dict[str, str], tiny_model: TinyModel
) -> None:
    planted = plant_corpus(tmp_path / "hostile")
    good = min((tiny_model.dataset_root / tiny_model.labels[0]).glob("*.jpg"))
    paths = [good, *planted.values()]

    started = time.perf_counter()
    result = CliRunner().invoke(app, ["classify", "--json", *map(str, paths)])
    elapsed = time.perf_counter() - started
    print(f"\nnamae classify --json on {len(paths)} files: {elapsed:.2f} s")
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    answer = json.loads(result.stdout)
    by_image = {entry["image"]: entry for entry in answer["results"]}
    assert list(by_image) == [str(p) for p in paths]  # every file answered, in order
    assert by_image[str(good)]["faces"][0]["candidates"]
    for case, path in planted.items():
        entry = by_image[str(path)]
        if case in REJECTED:
            detail = refusal(path.read_bytes(), ImageLimits()).detail
            assert entry == {"image": str(path), "error": f"{REJECTED[case]}: {detail}"}
        else:
            assert "error" not in entry and entry["faces"], case

    # The table a person reads: one line per refused file, naming it and its reason.
    env = {**os.environ, **classify_env, "COLUMNS": "400", "NO_COLOR": "1"}
    shown = subprocess.run(
        [sys.executable, "-m", "namae", "classify", *map(str, paths)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert shown.returncode == 1, shown.stderr
    assert "Traceback" not in shown.stderr
    lines = shown.stdout.splitlines()
    for case, path in planted.items():
        mine = [line for line in lines if hostile_name(case) in line]
        assert mine, f"{case}: not in the table"
        if case in REJECTED:
            assert any(f"{REJECTED[case]}: " in line for line in mine), mine
    assert any(good.name in line and "%" in line for line in lines)

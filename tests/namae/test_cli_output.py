"""What the CLI prints (issue 15, items 7, 8, 9 and the classify part of 9b): text people typed
prints as typed (never read as rich markup), tables on a terminal and one plain line per row when
piped, classify names images by file name and refuses a big file before reading it, and commands
that only read create nothing."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from namae.cli import app
from tests.fixtures.model import TinyModel

REPO = Path(__file__).resolve().parents[2]
runner = CliRunner()
BOX = "│"  # rich's table border

NAME = "Rem [re:zero] [/b]"
ALIAS = "[bold]Oni maid[/bold]"
SERIES = "[red]Re:Zero[/red] [discord]"


@pytest.fixture
def env(env: Path, monkeypatch: pytest.MonkeyPatch, cascade_path: Path) -> Path:
    """The shared empty setup, with the cascade at hand, no token and rich left to detect a pipe."""
    monkeypatch.setenv("NAMAE_FACES__CASCADE_PATH", str(cascade_path))
    monkeypatch.delenv("NAMAE_DISCORD__TOKEN", raising=False)
    for variable in ("TTY_COMPATIBLE", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(variable, raising=False)
    return env


@pytest.fixture
def terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """rich takes the output for a terminal (what a person at a shell sees), 160 columns wide."""
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "160")


@pytest.fixture
def with_model(env: Path, tiny_model: TinyModel) -> TinyModel:
    env.mkdir()
    shutil.copytree(tiny_model.registry_root, env / "models")
    return tiny_model


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def clean_failure(result: Result) -> str:
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result.stderr


def add_bracketed_character() -> None:
    added = ok(runner.invoke(app, ["characters", "add", NAME, "--alias", ALIAS, "--series", SERIES]))
    assert added.stdout.strip() == f"added {NAME}"


# --- 7: rich markup never eats text -----------------------------------------------------------------


def test_names_with_brackets_print_as_typed_when_piped(env: Path) -> None:
    add_bracketed_character()
    listing = ok(runner.invoke(app, ["characters", "list"]))
    row = listing.stdout.splitlines()[1].split("\t")
    assert row[:3] == [NAME, ALIAS, SERIES]
    info = ok(runner.invoke(app, ["characters", "info", ALIAS]))
    assert f'"name": "{NAME}"' in info.stdout
    again = clean_failure(runner.invoke(app, ["characters", "add", NAME.upper()]))
    assert f"already a name of {NAME!r}" in again, again
    ghost = clean_failure(runner.invoke(app, ["characters", "info", "[/b]Ghost [red]x"]))
    assert "no character named '[/b]Ghost [red]x'" in ghost
    removed = ok(runner.invoke(app, ["characters", "remove", NAME]))
    assert removed.stdout.strip() == f"removed {NAME}"


def test_names_with_brackets_print_as_typed_in_a_terminal_table(env: Path, terminal: None) -> None:
    add_bracketed_character()
    listing = ok(runner.invoke(app, ["characters", "list"]))
    assert BOX in listing.stdout
    for text in (NAME, ALIAS, SERIES):
        assert text in listing.stdout, text


def test_the_missing_token_message_keeps_its_toml_section(env: Path) -> None:
    for command in (["bot"], ["run"]):
        said = clean_failure(runner.invoke(app, command))
        assert "(or [discord] token in namae.toml)" in said, said


# --- 8: tables on a terminal, plain lines when piped ------------------------------------------------


def test_piped_tables_are_tab_separated_lines(env: Path) -> None:
    ok(runner.invoke(app, ["characters", "add", "Emilia", "-s", "Emilia", "-s", "RezeroEmilia"]))
    ok(runner.invoke(app, ["jobs", "add", "scrape", "--character", "Emilia"]))
    characters = ok(runner.invoke(app, ["characters", "list"])).stdout.splitlines()
    assert characters[0] == "name\taliases\tseries\timages\tsources\tlast scrape\tlast attempt\tactive"
    assert characters[1].split("\t")[0] == "Emilia" and len(characters) == 2
    assert "r/Emilia" in characters[1] and BOX not in characters[1]
    jobs = ok(runner.invoke(app, ["jobs"])).stdout.splitlines()
    assert jobs[0].startswith("id\tkind\tstatus") and jobs[1].split("\t")[:3] == ["1", "scrape", "queued"]
    config = ok(runner.invoke(app, ["config", "show"])).stdout.splitlines()
    assert config[0] == "setting\tvalue" and "train.epochs\t6" in config


def test_terminal_tables_stay_tables(env: Path, terminal: None) -> None:
    ok(runner.invoke(app, ["characters", "add", "Emilia"]))
    listing = ok(runner.invoke(app, ["characters", "list"])).stdout
    assert BOX in listing and "\t" not in listing


def test_a_folder_import_piped_shows_progress_lines_and_a_plain_summary(env: Path, tmp_path: Path) -> None:
    from tests.trainer.conftest import draw_folder

    names = draw_folder(tmp_path / "folder", {0: 3, 1: 3}, size=96)
    lines = ok(runner.invoke(app, ["import", str(tmp_path / "folder")])).stdout.splitlines()
    assert BOX not in "".join(lines)
    for name in names:  # the folder's name; the character's is its title-cased form
        assert any(line.endswith(f": {name}: 3/3 (100%), {line.rsplit(' ', 1)[-1]}") for line in lines), lines
    header = next(i for i, line in enumerate(lines) if line.startswith("Character\tSource\tPosts\t"))
    rows = [line.split("\t") for line in lines[header + 1 :]]
    assert sorted(row[1] for row in rows) == ["", *sorted(f"folder {name}" for name in names)]
    assert rows[-1][0] == "total" and rows[-1][2] == "6"


# --- classify: piped lines, terminal file names, big files, no model -------------------------------


def test_classify_piped_prints_one_line_per_face_with_the_whole_path(
    with_model: TinyModel, tmp_path: Path
) -> None:
    deep = tmp_path / ("a-folder-with-a-long-name-" * 4) / "and-another-one-below-it"
    pictures = []
    for number, label in enumerate(with_model.labels[:2]):
        source = min((with_model.dataset_root / label).glob("*.jpg"))
        target = deep / f"picture-{number}-[{label}].jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
        pictures.append(target)
    piped = subprocess.run(
        [sys.executable, "-m", "namae", "classify", *map(str, pictures)],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert lines[0] == "image\tface\tanswer\t#1\t#2\t#3"
    faces = [line.split("\t") for line in lines[1:]]
    assert {face[0] for face in faces} == {str(p) for p in pictures}
    assert all(len(face) >= 4 and face[3].endswith("%") for face in faces), faces


def test_classify_in_a_terminal_names_images_by_file_name(
    with_model: TinyModel, tmp_path: Path, terminal: None
) -> None:
    label = with_model.labels[0]
    source = min((with_model.dataset_root / label).glob("*.jpg"))
    pictures = []
    for folder in ("first", "second"):
        for name in ("same.jpg", f"only-in-{folder}.jpg"):
            target = tmp_path / folder / name
            target.parent.mkdir(exist_ok=True)
            shutil.copy(source, target)
            pictures.append(target)
    table = ok(runner.invoke(app, ["classify", *map(str, pictures)])).stdout
    assert BOX in table
    assert "first/same.jpg" in table and "second/same.jpg" in table
    assert "only-in-first.jpg" in table and "only-in-second.jpg" in table
    assert str(tmp_path) not in table


def test_classify_refuses_a_huge_file_from_its_size_without_reading_it(
    with_model: TinyModel, tmp_path: Path
) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as handle:
        handle.truncate(2**40)  # sparse: a terabyte on paper, no space on disk; reading it would fail
    good = min((with_model.dataset_root / with_model.labels[0]).glob("*.jpg"))
    result = runner.invoke(app, ["classify", str(huge), str(good)])
    said = clean_failure(result)
    assert said == ""
    lines = result.stdout.splitlines()
    assert lines[1].split("\t")[:3] == [
        str(huge),
        "",
        f"too_large: The file has {2**40:,} bytes, more than the limit of {20 * 1024 * 1024:,}.",
    ]
    assert lines[2].startswith(f"{good}\t")


def test_classify_without_an_active_model_says_so_and_creates_nothing(env: Path, tmp_path: Path) -> None:
    picture = tmp_path / "picture.jpg"
    picture.write_bytes(b"\xff\xd8\xff")
    said = clean_failure(runner.invoke(app, ["classify", str(picture)]))
    assert said.strip() == f"error: no model is active in {env / 'models'}: train one, or promote a candidate"
    assert not env.exists()


READ_ONLY = [
    (["config", "show"], 0),
    (["characters", "list"], 0),
    (["characters", "info", "Rem"], 1),
    (["models", "list"], 0),
    (["models", "show"], 1),
    (["jobs"], 0),
    (["store", "check"], 0),
]


@pytest.mark.parametrize(("command", "status"), READ_ONLY, ids=[" ".join(c) for c, _ in READ_ONLY])
def test_read_only_commands_create_nothing(env: Path, command: list[str], status: int) -> None:
    result = runner.invoke(app, command)
    assert result.exit_code == status, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert not env.exists(), sorted(str(p.relative_to(env)) for p in env.rglob("*"))


@pytest.mark.parametrize(("command", "status"), READ_ONLY, ids=[" ".join(c) for c, _ in READ_ONLY])
def test_read_only_commands_create_nothing_beside_an_existing_catalog(
    env: Path, command: list[str], status: int
) -> None:
    ok(runner.invoke(app, ["db", "upgrade"]))
    before = sorted(p.name for p in env.iterdir())
    result = runner.invoke(app, command)
    assert result.exit_code == status, result.output
    assert sorted(p.name for p in env.iterdir()) == before

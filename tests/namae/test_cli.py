"""The front door: every command has --help; user errors are one line and a non-zero exit."""

import json
import socket
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from catalog.settings_sections import StoreSettings
from namae.cli import app

runner = CliRunner()


def _commands(group, prefix=()):
    for name, command in getattr(group, "commands", {}).items():
        yield (*prefix, name)
        yield from _commands(command, (*prefix, name))


def test_every_command_has_help() -> None:
    paths = list(_commands(get_command(app)))
    assert len(paths) >= 20
    for path in paths:
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)
        assert "Usage" in result.output


def test_characters_round_trip_and_bad_input(env: Path) -> None:
    ok = runner.invoke(app, ["characters", "add", "Rem", "--alias", "Oni maid", "-s", "Re_Zero"])
    assert ok.exit_code == 0, ok.output
    for args, message in [
        (["characters", "add", "Ram", "--alias", "oni MAID"], "already a name of 'Rem'"),
        (["characters", "add", "Rem"], "already a name of 'Rem'"),
        (["characters", "add", "Emilia", "-s", "not valid!"], "invalid subreddit"),
        (["characters", "remove", "Ghost"], "no character named 'Ghost'"),
        (["characters", "info", "Ghost"], "no character named 'Ghost'"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output
    listing = runner.invoke(app, ["characters", "list"])
    assert "Rem" in listing.output and "Emilia" not in listing.output and "Ram" not in listing.output


def test_unreachable_database_is_one_clear_line(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMAE_DATABASE_URL", "postgresql://namae:hunter2@127.0.0.1:9/namae")
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "does not answer" in result.output and "hunter2" not in result.output


def test_unwritable_data_directory_is_refused(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NAMAE_DATA_DIR", str(blocker / "data"))
    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 1
    assert "data directory" in result.output


def test_config_show_masks_secrets(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMAE_DISCORD__TOKEN", "discord-token-XYZ")
    monkeypatch.setenv("NAMAE_REDDIT__CLIENT_SECRET", "reddit-secret-XYZ")
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0
        assert "XYZ" not in result.output and "***" in result.output
    data = json.loads(runner.invoke(app, ["config", "show", "--json"]).output)
    assert data["discord"]["token"] == "***"


def test_jobs_queue_list_and_retry_errors(env: Path) -> None:
    assert runner.invoke(app, ["jobs", "add", "scrape", "--character", "Rem"]).exit_code == 0
    listing = runner.invoke(app, ["jobs"])
    assert "scrape" in listing.output and "queued" in listing.output
    bad = runner.invoke(app, ["jobs", "add", "dance"])
    assert bad.exit_code == 1 and "unknown job kind" in bad.output
    retry = runner.invoke(app, ["jobs", "retry", "1"])
    assert retry.exit_code == 1 and "not failed" in retry.output


def test_missing_discord_token_names_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAMAE_DISCORD__TOKEN", raising=False)
    for command in (["bot"], ["run"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 1
        assert "NAMAE_DISCORD__TOKEN" in result.output and "Traceback" not in result.output


def test_missing_reddit_credentials_name_the_variable(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NAMAE_REDDIT__CLIENT_ID", raising=False)
    assert runner.invoke(app, ["characters", "add", "Rem", "-s", "Re_Zero"]).exit_code == 0
    result = runner.invoke(app, ["scrape"])
    assert result.exit_code == 1
    assert "NAMAE_REDDIT__CLIENT_ID" in result.output


def test_store_check_reports_orphans_and_fix_removes_them(env: Path) -> None:
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    orphan = env / "images" / "ab" / "cd" / ("abcd" + "0" * 60)
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")
    dirty = runner.invoke(app, ["store", "check"])
    assert dirty.exit_code == 1 and "orphans" in dirty.output
    fixed = runner.invoke(app, ["store", "check", "--fix"])
    assert fixed.exit_code == 0 and not orphan.exists()


def _use_store(monkeypatch: pytest.MonkeyPatch, store: StoreSettings, url: str | None = None) -> None:
    monkeypatch.setenv("NAMAE_STORE__URL", url or store.url)
    monkeypatch.setenv("NAMAE_STORE__ENDPOINT", store.endpoint)
    monkeypatch.setenv("NAMAE_STORE__ACCESS_KEY_ID", store.access_key_id.get_secret_value())
    monkeypatch.setenv("NAMAE_STORE__SECRET_ACCESS_KEY", store.secret_access_key.get_secret_value())


@pytest.mark.s3
def test_store_check_and_models_list_work_on_a_bucket(
    env: Path, monkeypatch: pytest.MonkeyPatch, s3_store: StoreSettings
) -> None:
    _use_store(monkeypatch, s3_store)
    assert runner.invoke(app, ["db", "upgrade"]).exit_code == 0
    from catalog.settings import Settings
    from catalog.store import ImageStore

    ImageStore.from_settings(Settings(_env_file=None)).put(b"an orphan")
    dirty = runner.invoke(app, ["store", "check"])
    assert dirty.exit_code == 1 and "orphans" in dirty.output and s3_store.url in dirty.output
    assert runner.invoke(app, ["store", "check", "--fix"]).exit_code == 0
    assert runner.invoke(app, ["store", "check"]).exit_code == 0
    listed = runner.invoke(app, ["models", "list"])
    assert listed.exit_code == 0, listed.output
    assert not (env / "images").exists() and not (env / "models").exists()


@pytest.mark.s3
def test_a_missing_bucket_is_one_clear_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, s3_store: StoreSettings
) -> None:
    _use_store(monkeypatch, s3_store, url="s3://no-such-bucket-here/deploy")
    result = runner.invoke(app, ["models", "list"])
    assert result.exit_code == 1
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: ") and "s3://no-such-bucket-here/deploy/models" in line
    assert "Traceback" not in result.output


def test_unreachable_reddit_fails_the_scrape_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch, cascade_path: Path
) -> None:
    """Issue 15 item 10: with Reddit's address refusing connections the scrape used to retry for
    minutes, exit 0 and show the run in `characters list` as a recent scrape."""
    with socket.socket() as probe:  # a port nothing listens on once it is closed
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    for name in ("OAUTH_URL", "REDDIT_URL", "SHORT_URL"):
        monkeypatch.setenv(f"NAMAE_REDDIT__{name}", closed)
    monkeypatch.setenv("NAMAE_REDDIT__CLIENT_ID", "id")
    monkeypatch.setenv("NAMAE_FACES__CASCADE_PATH", str(cascade_path))
    monkeypatch.setenv("NAMAE_REDDIT__CLIENT_SECRET", "secret")
    for name, sub in (("Rem", "Re_Zero"), ("Emilia", "EmiliaMains")):
        assert runner.invoke(app, ["characters", "add", name, "-s", sub]).exit_code == 0

    result = runner.invoke(app, ["scrape"])

    assert result.exit_code == 1
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: the scrape stopped: Reddit cannot be reached: {closed[7:]} (connection refused)"
    ]
    assert "Traceback" not in result.output and "Scrape summary" not in result.output
    rem, emilia = (
        json.loads(runner.invoke(app, ["characters", "info", n]).output) for n in ("Rem", "Emilia")
    )
    assert rem["last_scrape"] is None and rem["last_attempt"] is not None
    assert emilia["last_attempt"] is None  # the run stopped before its source


def test_train_faces_bad_input_is_one_line_and_installs_nothing(env: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        (["train-faces", "--boxes", str(tmp_path / "missing")], "is not a folder"),
        (["train-faces", "--boxes", str(empty)], "no Annotations/*.xml"),
        (["train-faces", "--crops", str(empty)], "no pictures found"),
    ]:
        result = runner.invoke(app, args)
        assert result.exit_code == 1, (args, result.output)
        assert message in result.output
        assert "Traceback" not in result.output
    assert not (env / "faces").exists()

"""Settings that cannot work are refused when they load, by every command, on one line (issue 15, 6)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from namae.cli import app

runner = CliRunner()


def one_error_line(result: Result) -> str:
    """The command failed with exit 1 and said why on one line of stderr, without a traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), lines
    return lines[0]


BAD_SETTINGS = [
    ("NAMAE_DATABASE_URL", "garbage", "NAMAE_DATABASE_URL: not a database URL; namae works with SQLite"),
    (
        "NAMAE_DATABASE_URL",
        "mysql://namae:hunter2@127.0.0.1/namae",
        "NAMAE_DATABASE_URL: mysql is not supported; namae works with SQLite (sqlite:///",
    ),
    ("NAMAE_DATABASE_URL", "postgresql://u:hunter2@db:99999/namae", "port 99999 is not a TCP port"),
    ("NAMAE_LOG_LEVEL", "LOUD", "NAMAE_LOG_LEVEL='LOUD': expected one of DEBUG, INFO, WARNING"),
    (
        "NAMAE_WORKER__RESCRAPE_SCHEDULE",
        "every:5x",
        "NAMAE_WORKER__RESCRAPE_SCHEDULE='every:5x': not a schedule",
    ),
    ("NAMAE_WORKER__RETRAIN_SCHEDULE", "cron:61 * * * *", "not a crontab"),
    ("NAMAE_WORKER__RETRAIN_CHECK_SCHEDULE", "interval:0s", "not a schedule"),
    (
        "NAMAE_IMAGES__MAX_BYTES",
        "-1",
        "NAMAE_IMAGES__MAX_BYTES='-1': Input should be greater than or equal to 1",
    ),
    ("NAMAE_DISCORD__MAX_IMAGE_BYTES", "0", "NAMAE_DISCORD__MAX_IMAGE_BYTES='0'"),
    ("NAMAE_DISCORD__DEFAULT_THRESHOLD", "1.5", "less than or equal to 1"),
    ("NAMAE_IMAGES__GREYSCALE_SATURATION", "-0.1", "greater than or equal to 0"),
    ("NAMAE_TRAIN__TARGET_PRECISION", "2", "NAMAE_TRAIN__TARGET_PRECISION='2'"),
    ("NAMAE_TRAIN__VAL_FRACTION", "0.9", "leave nothing to train on"),
    ("NAMAE_TRAIN__BACKBONE", "vgg11", "NAMAE_TRAIN__BACKBONE='vgg11': Input should be 'efficientnet_lite0'"),
    ("NAMAE_TRAIN__DEVICE", "gpu", "expected auto, cpu, cuda, cuda:N or mps"),
    ("NAMAE_TRAIN__EPOCHS", "0", "NAMAE_TRAIN__EPOCHS='0'"),
    ("NAMAE_REGISTRY__KEEP_LAST", "1", "NAMAE_REGISTRY__KEEP_LAST='1'"),
    ("NAMAE_REGISTRY__PROMOTION_MARGIN", "-0.5", "NAMAE_REGISTRY__PROMOTION_MARGIN='-0.5'"),
    ("NAMAE_DOWNLOAD__CONCURRENCY", "-3", "NAMAE_DOWNLOAD__CONCURRENCY='-3'"),
    ("NAMAE_DOWNLOAD__READ_TIMEOUT", "0", "NAMAE_DOWNLOAD__READ_TIMEOUT='0'"),
    (
        "NAMAE_DOWNLOAD__HOSTS",
        '{"i.redd.it": "localhost"}',
        "i.redd.it -> 'localhost': expected an IP address",
    ),
    ("NAMAE_REDDIT__OAUTH_URL", "http://127.0.0.1:99999", "Port out of range"),
    ("NAMAE_REDDIT__IMGUR_API_URL", "api.imgur.com", "expected a http:// or https:// URL with a host"),
    ("NAMAE_REDDIT__LIMIT", "0", "NAMAE_REDDIT__LIMIT='0'"),
    ("NAMAE_FACES__SCALE_FACTOR", "1.0", "greater than 1"),
    ("NAMAE_FACES__CASCADE_SHA256", "abc", "NAMAE_FACES__CASCADE_SHA256='abc'"),
    ("NAMAE_WORKER__HEARTBEAT_S", "120", "stale_after_s 60.0 must be longer than heartbeat_s 120.0"),
    ("NAMAE_WORKER__MAX_ATTEMPTS", "0", "NAMAE_WORKER__MAX_ATTEMPTS='0'"),
]


@pytest.mark.parametrize("command", [["characters", "list"], ["config", "show"], ["train"]], ids=" ".join)
@pytest.mark.parametrize(
    ("variable", "value", "says"), BAD_SETTINGS, ids=[f"{v}={x}" for v, x, _ in BAD_SETTINGS]
)
def test_an_invalid_setting_is_one_line_and_exit_1(
    env: Path, monkeypatch: pytest.MonkeyPatch, command: list[str], variable: str, value: str, says: str
) -> None:
    monkeypatch.setenv(variable, value)
    line = one_error_line(runner.invoke(app, command))
    assert line.startswith("error: invalid configuration: "), line
    assert says in line
    assert "hunter2" not in line
    assert not env.exists(), "a refused configuration created the data directory"


def test_several_invalid_settings_are_named_on_the_same_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NAMAE_LOG_LEVEL", "LOUD")
    monkeypatch.setenv("NAMAE_TRAIN__EPOCHS", "-2")
    line = one_error_line(runner.invoke(app, ["config", "show"]))
    assert "NAMAE_LOG_LEVEL='LOUD'" in line and "NAMAE_TRAIN__EPOCHS='-2'" in line


def test_a_toml_file_that_does_not_parse_is_named(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    broken = tmp_path / "namae.toml"
    broken.write_text("[discord\nquorum = 2\n")
    monkeypatch.setenv("NAMAE_CONFIG", str(broken))
    line = one_error_line(runner.invoke(app, ["config", "show"]))
    assert f"{broken} is not TOML" in line


def test_invalid_values_in_the_toml_file_are_refused_too(
    env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml = tmp_path / "namae.toml"
    toml.write_text('log_level = "chatty"\n[worker]\nrescrape_schedule = "hourly"\n')
    monkeypatch.setenv("NAMAE_CONFIG", str(toml))
    line = one_error_line(runner.invoke(app, ["config", "show"]))
    assert "NAMAE_LOG_LEVEL='chatty'" in line and "NAMAE_WORKER__RESCRAPE_SCHEDULE='hourly'" in line


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("NAMAE_LOG_LEVEL", "debug"),
        ("NAMAE_LOG_LEVEL", "warn"),
        ("NAMAE_DATABASE_URL", "postgresql+psycopg://namae:secret@db:5432/namae"),
        ("NAMAE_DATABASE_URL", "sqlite:///elsewhere/namae.db"),
        ("NAMAE_WORKER__RESCRAPE_SCHEDULE", "cron:*/15 * * * *"),
        ("NAMAE_WORKER__RETRAIN_SCHEDULE", "off"),
        ("NAMAE_TRAIN__DEVICE", "cuda:1"),
    ],
)
def test_valid_settings_still_load(
    env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["config", "show", "--json"])
    assert result.exit_code == 0, result.output

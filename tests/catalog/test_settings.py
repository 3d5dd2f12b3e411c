from pathlib import Path

from catalog.settings import Settings


def test_environment_toml_and_defaults(tmp_path: Path, monkeypatch) -> None:
    toml = tmp_path / "namae.toml"
    toml.write_text('data_dir = "/srv/namae"\n[discord]\nquorum = 4\n[train]\nepochs = 3\n')
    monkeypatch.setenv("NAMAE_CONFIG", str(toml))
    monkeypatch.setenv("NAMAE_TRAIN__EPOCHS", "7")
    monkeypatch.setenv("NAMAE_DISCORD__TOKEN", "super-secret-token")
    settings = Settings(_env_file=None)
    assert settings.data_dir == Path("/srv/namae")
    assert settings.discord.quorum == 4  # from the file
    assert settings.train.epochs == 7  # environment beats the file
    assert settings.discord.token.get_secret_value() == "super-secret-token"
    assert settings.resolved_database_url == "sqlite:////srv/namae/namae.db"
    assert settings.registry_dir == Path("/srv/namae/models")


def test_masked_configuration_never_contains_secrets(monkeypatch) -> None:
    monkeypatch.setenv("NAMAE_DISCORD__TOKEN", "tok-123456")
    monkeypatch.setenv("NAMAE_REDDIT__CLIENT_SECRET", "reddit-abcdef")
    monkeypatch.setenv("NAMAE_DATABASE_URL", "postgresql://namae:pg-pass-987@db/namae")
    masked = Settings(_env_file=None).masked()
    text = repr(masked)
    for secret in ("tok-123456", "reddit-abcdef", "pg-pass-987"):
        assert secret not in text
    assert masked["discord"]["token"] == "***"
    assert masked["database_url"].startswith("postgresql://namae:***@db")


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAMAE_CONFIG", raising=False)
    (tmp_path / ".env").write_text("NAMAE_LOG_LEVEL=DEBUG\n")
    assert Settings().log_level == "DEBUG"

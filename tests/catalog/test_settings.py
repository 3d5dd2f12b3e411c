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
    monkeypatch.setenv("NAMAE_STORE__SECRET_ACCESS_KEY", "s3-secret-555")
    masked = Settings(_env_file=None).masked()
    text = repr(masked)
    for secret in ("tok-123456", "reddit-abcdef", "pg-pass-987", "s3-secret-555"):
        assert secret not in text
    assert masked["store"]["secret_access_key"] == "***"
    assert masked["discord"]["token"] == "***"
    assert masked["database_url"].startswith("postgresql://namae:***@db")


def test_dotenv_file_is_read(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NAMAE_CONFIG", raising=False)
    (tmp_path / ".env").write_text("NAMAE_LOG_LEVEL=DEBUG\n")
    assert Settings().log_level == "DEBUG"


def test_object_store_settings_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("NAMAE_STORE__URL", "s3://namae-images/prod")
    monkeypatch.setenv("NAMAE_STORE__ENDPOINT", "http://minio:9000")
    monkeypatch.setenv("NAMAE_STORE__ACCESS_KEY_ID", "AKIA-EXAMPLE")
    store = Settings(_env_file=None).store
    assert (store.url, store.endpoint, store.region) == (
        "s3://namae-images/prod",
        "http://minio:9000",
        "us-east-1",
    )
    assert store.access_key_id.get_secret_value() == "AKIA-EXAMPLE" and not store.virtual_hosted_style
    assert Settings(_env_file=None, store={"url": ""}).store.url is None  # empty: the data directory


def test_a_store_url_that_is_not_s3_is_refused(monkeypatch) -> None:
    import pytest
    from pydantic import ValidationError

    monkeypatch.setenv("NAMAE_STORE__URL", "/srv/bucket")
    with pytest.raises(ValidationError, match="must look like s3://bucket"):
        Settings(_env_file=None)

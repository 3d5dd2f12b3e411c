"""Configuration: `NAMAE_*` environment variables, an optional TOML file and `.env`.

Precedence, highest first: explicit arguments, environment, `.env`, the TOML file (`NAMAE_CONFIG`,
default `namae.toml` in the working directory), defaults. Nested sections use `__` in variable
names: `NAMAE_DISCORD__TOKEN`, `NAMAE_REDDIT__CLIENT_ID`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

CASCADE_URL = (
    "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
)
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"


class ImageLimits(BaseModel):
    """Bounds that every path that decodes an image obeys (scraper, import, trainer, bot, CLI)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    min_side: int = 32
    max_aspect: float = 8.0
    max_frames_sampled: int = 4
    max_frames_scanned: int = 500
    reject_greyscale: bool = False
    greyscale_saturation: float = 0.06


class FaceSettings(BaseModel):
    cascade_path: Path | None = None
    cascade_url: str = CASCADE_URL
    cascade_sha256: str = CASCADE_SHA256
    scale_factor: float = 1.1
    min_neighbors: int = 5
    min_size: int = 24
    margin: float = 0.25
    crop_size: int = 128
    # Detection runs on a copy whose long side is at most this; a face under min_size at that scale
    # (under 5% of the long side at 512) is not found. `python -m bench.inference` measures the
    # choice (detection_side): on 77 faces in 1-12 MP synthetic pictures, 512 found as many as
    # 640-1024 and more than 1600 (the LBP cascade is trained on small faces), at a fifth of
    # 1600's time, which keeps the bot's decode-to-answer of a 1.5 MP JPEG under 30 ms on 2 cores.
    detect_max_side: int = Field(default=512, ge=64)


class DownloadSettings(BaseModel):
    concurrency: int = 8
    per_host: int = 4
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_redirects: int = 3
    retries: int = 3
    backoff_base: float = 0.5
    backoff_max: float = 30.0
    allow_private_addresses: bool = Field(
        default=False,
        description="Only for the offline sandbox: lets downloads reach 127.0.0.1.",
    )
    user_agent: str = "namae/0.1 (+https://github.com/namae-bot/namae)"
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="Static DNS overrides, host -> IP; the sandbox maps Reddit's and imgur's hosts to 127.0.0.1.",
    )


class RedditSettings(BaseModel):
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    user_agent: str = "namae/0.1 by namae-bot"
    # The sandbox points these at 127.0.0.1; the defaults are asyncpraw's own.
    oauth_url: str | None = None
    reddit_url: str | None = None
    short_url: str | None = None
    listing: Literal["new", "hot", "top"] = "new"
    time_filter: Literal["hour", "day", "week", "month", "year", "all"] = "all"
    limit: int = 100
    rate_limit_backoff: float = 5.0
    imgur_client_id: SecretStr | None = None
    imgur_api_url: str = "https://api.imgur.com"


class TrainSettings(BaseModel):
    backbone: str = "efficientnet_lite0"
    image_size: int = 96
    epochs: int = 12
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 0.05
    label_smoothing: float = 0.1
    min_images_per_class: int = 8
    max_images_per_class: int = 2000
    target_precision: float = 0.9
    # The objective (trainer.losses): "cross_entropy", or a margin loss over a cosine head.
    loss: Literal["cross_entropy", "cosface", "arcface"] = "cross_entropy"
    margin: float = Field(default=0.2, ge=0.0, le=1.0)
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 1234
    device: str = "auto"
    num_workers: int = 0


class MemorySettings(BaseModel):
    """The character memory (models/memory.py) and the open-set answers fitted with it."""

    # A character the model was not trained on is named once the memory holds this many of its faces.
    min_examples: int = Field(default=5, ge=1)
    # Faces kept per character (a random sample past it): the memory's size and the bot's RAM.
    max_per_character: int = Field(default=200, ge=1)
    # Precision the "name" threshold is fitted for, on held-out faces.
    target_precision: float = Field(default=0.98, gt=0.0, le=1.0)
    # Share of held-out faces of a character left out of the memory that may still be named.
    max_strangers: float = Field(default=0.05, ge=0.0, le=1.0)
    # How often the bot reads faces that landed in the catalog since it last looked, seconds.
    poll_s: float = Field(default=10.0, gt=0.0)


class RegistrySettings(BaseModel):
    promotion_margin: float = 0.01
    keep_last: int = 5


class StoreSettings(BaseModel):
    """Where images, models and the frozen test set live. Unset `url`: folders in the data
    directory (one machine). `s3://bucket/prefix`: any S3-compatible service, and the data
    directory is only a local cache, so bot, workers and trainer need no shared filesystem."""

    url: str | None = Field(default=None, description="s3://bucket/prefix; unset: the data directory")
    endpoint: str | None = Field(
        default=None, description="e.g. http://minio:9000 or https://<account>.r2.cloudflarestorage.com"
    )
    region: str = "us-east-1"
    access_key_id: SecretStr | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    # MinIO, Ceph and most self-hosted services want path-style URLs (http://host/bucket/key).
    virtual_hosted_style: bool = False
    timeout_s: float = Field(default=60.0, gt=0)
    connect_timeout_s: float = Field(default=5.0, gt=0)

    @field_validator("url")
    @classmethod
    def _s3_only(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith("s3://") or len(value) <= len("s3://"):
            raise ValueError(f"must look like s3://bucket or s3://bucket/prefix, got {value!r}")
        return value


class BotSettings(BaseModel):
    token: SecretStr | None = None
    allowed_hosts: list[str] = Field(
        default_factory=lambda: [
            "cdn.discordapp.com",
            "media.discordapp.net",
            "i.redd.it",
            "i.imgur.com",
        ]
    )
    max_image_bytes: int = 10 * 1024 * 1024
    max_images_per_message: int = 10
    concurrency: int = 2
    # Below this confidence the bot says "not sure"; None: the model card's own thresholds (per
    # character, fitted by the trainer for its target precision). A guild's /settings threshold
    # overrides either.
    default_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: int = 3
    quorum: int = 2
    member_cooldown_s: float = 5.0
    member_cooldown_rate: int = 3
    guild_cooldown_s: float = 10.0
    guild_cooldown_rate: int = 30
    cache_size: int = 1024
    model_poll_s: float = 5.0
    prediction_retention_days: int = 180
    # The sandbox sets these to its own 127.0.0.1 address.
    api_base: str | None = None
    gateway_url: str | None = None


class WorkerSettings(BaseModel):
    """Schedules are `interval:<n><s|m|h|d|w>`, `cron:<crontab>` (UTC) or `off`."""

    rescrape_schedule: str = "interval:6h"
    retrain_schedule: str = "cron:0 4 * * 0"
    retrain_check_schedule: str = "interval:30m"
    retrain_min_new_labels: int = 50
    poll_interval_s: float = 0.5
    heartbeat_s: float = 5.0
    stale_after_s: float = 60.0
    misfire_grace_s: int = 3600
    max_attempts: int = 3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="NAMAE_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
        toml_file="namae.toml",
    )

    data_dir: Path = Path("data")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data directory."
    )
    log_level: str = "INFO"
    images: ImageLimits = Field(default_factory=ImageLimits)
    faces: FaceSettings = Field(default_factory=FaceSettings)
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    reddit: RedditSettings = Field(default_factory=RedditSettings)
    train: TrainSettings = Field(default_factory=TrainSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    registry: RegistrySettings = Field(default_factory=RegistrySettings)
    discord: BotSettings = Field(default_factory=BotSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = os.environ.get("NAMAE_CONFIG", "namae.toml")
        toml = TomlConfigSettingsSource(settings_cls, toml_file=toml_path)
        return (init_settings, env_settings, dotenv_settings, toml, file_secret_settings)

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'namae.db').resolve()}"

    @property
    def image_store_dir(self) -> Path:
        """The image store when `store.url` is unset."""
        return self.data_dir / "images"

    @property
    def registry_dir(self) -> Path:
        """The model registry when `store.url` is unset."""
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        """Local copies of what lives in an object store (images, model versions); disposable."""
        return self.data_dir / "cache"

    @property
    def runs_dir(self) -> Path:
        """Training runs' reports and checkpoints: local to the machine that trained."""
        return self.data_dir / "runs"

    def masked(self) -> dict[str, Any]:
        """The effective configuration as plain data, every secret replaced by `***`."""
        data = _mask(self.model_dump(mode="python"))
        data["database_url"] = _hide_password(self.resolved_database_url)
        return data


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "***"
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _hide_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None

"""Configuration: `NAMAE_*` environment variables, an optional TOML file and `.env`.

Precedence, highest first: explicit arguments, environment, `.env`, the TOML file (`NAMAE_CONFIG`,
default `namae.toml` in the working directory), defaults. Nested sections use `__` in variable
names: `NAMAE_DISCORD__TOKEN`, `NAMAE_REDDIT__CLIENT_ID`.

Every value is checked here, when the settings load, so that a command refuses a setting that
cannot work (a negative size, a fraction outside [0, 1], a database URL namae cannot speak, a
schedule the worker cannot run) with one line naming it, before it starts anything;
`load_settings` turns pydantic's report into that line.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from catalog.errors import CatalogError
from catalog.schedules import schedule_trigger

CASCADE_URL = (
    "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
)
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
# The backbones the trainer can build (trainer.backbones builds exactly these).
Backbone = Literal[
    "efficientnet_lite0",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "resnet18",
    "resnet50",
    "convnext_tiny",
]
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SUPPORTED_DATABASES = (
    "SQLite (sqlite:///path/to/namae.db) and PostgreSQL (postgresql://user:password@host:5432/namae)"
)


def _web_url(*schemes: str):
    """A URL with one of `schemes` and a host, kept as the string it was given."""

    def check(value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises ValueError on a port outside 0-65535 or not a number
        except ValueError as exc:
            raise ValueError(f"not a URL: {exc}") from None
        if parts.scheme not in schemes or not parts.hostname:
            raise ValueError(f"expected a {' or '.join(f'{s}://' for s in schemes)} URL with a host")
        return value

    return AfterValidator(check)


HttpUrl = Annotated[str, _web_url("http", "https")]
Fraction = Annotated[float, Field(ge=0.0, le=1.0)]
Positive = Annotated[float, Field(gt=0.0)]
NonNegative = Annotated[float, Field(ge=0.0)]
Count = Annotated[int, Field(ge=1)]


class ImageLimits(BaseModel):
    """Bounds that every path that decodes an image obeys (scraper, import, trainer, bot, CLI)."""

    max_bytes: Count = 20 * 1024 * 1024
    max_pixels: Count = 40_000_000
    min_side: Count = 32
    max_aspect: float = Field(default=8.0, ge=1.0)
    # Animations are answered from `max_frames_sampled` frames spread evenly over the frames that
    # decoding can reach: an animation's first `max_frames_scanned` frames, as far as seeking through
    # them stays within `max_animation_pixels` canvas pixels (seeking to frame k decodes every frame
    # before it). Longer animations are sampled over what is reachable, never refused.
    max_frames_sampled: Count = 4
    max_frames_scanned: Count = 100_000
    max_animation_pixels: Count = 100_000_000
    reject_greyscale: bool = False
    greyscale_saturation: Fraction = 0.06


class FaceSettings(BaseModel):
    # Which finder every path uses (bot, CLI, scraper, trainer: `media.faces.face_finder`). "auto":
    # the trained finder when `namae train-faces` has installed one in the store (or `trained_dir`
    # names a folder holding one), else the cascade. "trained" fails clearly without one.
    finder: Literal["auto", "trained", "cascade"] = "auto"
    trained_dir: Path | None = None
    net_score_threshold: float | None = Field(default=None, gt=0, lt=1)  # else the finder's card's
    cascade_path: Path | None = None
    cascade_url: HttpUrl = CASCADE_URL
    cascade_sha256: str = Field(default=CASCADE_SHA256, pattern=r"^[0-9a-fA-F]{64}$")
    # OpenCV's detectMultiScale needs a factor above 1.
    scale_factor: float = Field(default=1.1, gt=1.0)
    min_neighbors: int = Field(default=5, ge=0)
    min_size: Count = 24
    margin: NonNegative = 0.25
    # The side of the face crops the scraper stores (the bot and folder training cut theirs at the
    # model's input size). Catalog training resizes the stored crops to the input size, so this is
    # the largest input size that never upscales a face (bench measured 96-224).
    crop_size: int = Field(default=224, ge=16)
    # Detection runs on a copy whose long side is at most this; a face under min_size at that scale
    # (under 5% of the long side at 512) is not found. `python -m bench.inference` measures the
    # choice (detection_side): on 77 faces in 1-12 MP synthetic pictures, 512 found as many as
    # 640-1024 and more than 1600 (the LBP cascade is trained on small faces), at a fifth of
    # 1600's time, which keeps the bot's decode-to-answer of a 1.5 MP JPEG under 30 ms on 2 cores.
    detect_max_side: int = Field(default=512, ge=64)


class DownloadSettings(BaseModel):
    concurrency: Count = 8
    per_host: Count = 4
    connect_timeout: Positive = 10.0
    read_timeout: Positive = 30.0
    max_redirects: int = Field(default=3, ge=0)
    retries: int = Field(default=3, ge=0)
    backoff_base: NonNegative = 0.5
    backoff_max: NonNegative = 30.0
    allow_private_addresses: bool = Field(
        default=False,
        description="Only for the offline sandbox: lets downloads reach 127.0.0.1.",
    )
    user_agent: str = Field(default="namae/0.1 (+https://github.com/namae-bot/namae)", min_length=1)
    hosts: dict[str, str] = Field(
        default_factory=dict,
        description="Static DNS overrides, host -> IP; the sandbox maps Reddit's and imgur's hosts to 127.0.0.1.",
    )

    @field_validator("hosts")
    @classmethod
    def _addresses(cls, value: dict[str, str]) -> dict[str, str]:
        for host, address in value.items():
            try:
                ipaddress.ip_address(address)
            except ValueError:
                raise ValueError(f"{host} -> {address!r}: expected an IP address") from None
        return value


class RedditSettings(BaseModel):
    client_id: SecretStr | None = None
    client_secret: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    user_agent: str = Field(default="namae/0.1 by namae-bot", min_length=1)
    # The sandbox points these at 127.0.0.1; the defaults are asyncpraw's own.
    oauth_url: HttpUrl | None = None
    reddit_url: HttpUrl | None = None
    short_url: HttpUrl | None = None
    listing: Literal["new", "hot", "top"] = "new"
    time_filter: Literal["hour", "day", "week", "month", "year", "all"] = "all"
    limit: Count = 100
    rate_limit_backoff: NonNegative = 5.0
    # Seconds one scrape run may spend on Reddit's failures (failed requests and back-off between
    # tries), all sources together; past it the run stops with an error.
    retry_budget_s: Positive = 300.0
    imgur_client_id: SecretStr | None = None
    imgur_api_url: HttpUrl = "https://api.imgur.com"


class TrainSettings(BaseModel):
    backbone: Backbone = "efficientnet_lite0"
    image_size: int = Field(default=96, ge=32, le=1024)
    epochs: Count = 12
    batch_size: Count = 64
    lr: Positive = 2e-3
    weight_decay: NonNegative = 0.05
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=1.0)
    min_images_per_class: Count = 8
    max_images_per_class: Count = 2000
    target_precision: float = Field(default=0.9, gt=0.0, le=1.0)
    # The objective (trainer.losses): "cross_entropy", or a margin loss over a cosine head.
    loss: Literal["cross_entropy", "cosface", "arcface"] = "cross_entropy"
    margin: float = Field(default=0.2, ge=0.0, le=1.0)
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    seed: int = Field(default=1234, ge=0)
    device: str = "auto"
    num_workers: int = Field(default=0, ge=0)

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", value):
            raise ValueError("expected auto, cpu, cuda, cuda:N or mps")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TrainSettings:
        if self.val_fraction + self.test_fraction >= 1.0:
            raise ValueError(
                f"val_fraction {self.val_fraction} + test_fraction {self.test_fraction} leave nothing to train on"
            )
        if self.max_images_per_class < self.min_images_per_class:
            raise ValueError(
                f"max_images_per_class {self.max_images_per_class} is below "
                f"min_images_per_class {self.min_images_per_class}"
            )
        return self


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
    promotion_margin: Fraction = 0.01
    # The active version and its rollback target always stay.
    keep_last: int = Field(default=5, ge=2)


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
    max_image_bytes: Count = 10 * 1024 * 1024
    max_images_per_message: Count = 10
    concurrency: Count = 2
    # Below this confidence the bot says "not sure"; None: the model card's own thresholds (per
    # character, fitted by the trainer for its target precision). A guild's /settings threshold
    # overrides either.
    default_threshold: float | None = Field(default=None, ge=0.0, le=1.0)
    top_k: Count = 3
    quorum: Count = 2
    member_cooldown_s: NonNegative = 5.0
    member_cooldown_rate: Count = 3
    guild_cooldown_s: NonNegative = 10.0
    guild_cooldown_rate: Count = 30
    cache_size: int = Field(default=1024, ge=0)
    model_poll_s: Positive = 5.0
    prediction_retention_days: Count = 180
    # The sandbox sets these to its own 127.0.0.1 address.
    api_base: HttpUrl | None = None
    gateway_url: Annotated[str, _web_url("ws", "wss")] | None = None
    # Sharding: without a count the bot asks Discord (GET /gateway/bot) and runs every shard in
    # this process; with `shard_ids` ("0,1", "4-7") it runs those of `shard_count` shards, so
    # several processes or machines share the bot.
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None
    # Discord allows one IDENTIFY per 5 s per concurrency bucket; only the sandbox changes it.
    identify_interval_s: float = Field(default=5.0, ge=0)

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _shard_ids(cls, value: Any) -> Any:
        return parse_shard_ids(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shards_fit(self) -> Self:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("shard_ids needs shard_count (NAMAE_DISCORD__SHARD_COUNT or --shard-count)")
            outside = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if outside:
                raise ValueError(
                    f"shard ids {outside} are outside 0..{self.shard_count - 1} ({self.shard_count} shards)"
                )
            if not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
                raise ValueError(f"shard ids must be distinct and at least one, got {self.shard_ids}")
        return self

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        bad = [host for host in value if not host.strip() or "/" in host or " " in host.strip()]
        if bad:
            raise ValueError(f"expected host names such as cdn.discordapp.com, got {bad!r}")
        return value


class WorkerSettings(BaseModel):
    """Schedules are `interval:<n><s|m|h|d|w>`, `cron:<crontab>` (UTC) or `off`."""

    rescrape_schedule: str = "interval:6h"
    retrain_schedule: str = "cron:0 4 * * 0"
    retrain_check_schedule: str = "interval:30m"
    retrain_min_new_labels: Count = 50
    poll_interval_s: Positive = 0.5
    heartbeat_s: Positive = 5.0
    stale_after_s: Positive = 60.0
    misfire_grace_s: Count = 3600
    max_attempts: Count = 3

    @field_validator("rescrape_schedule", "retrain_schedule", "retrain_check_schedule")
    @classmethod
    def _schedule(cls, value: str) -> str:
        try:
            schedule_trigger(value)
        except ValueError as exc:
            raise ValueError(f"not a schedule: {exc}") from None
        return value

    @model_validator(mode="after")
    def _heartbeat_before_stale(self) -> WorkerSettings:
        # A running job beats every heartbeat_s; one silent for stale_after_s is taken for dead.
        if self.stale_after_s <= self.heartbeat_s:
            raise ValueError(
                f"stale_after_s {self.stale_after_s} must be longer than heartbeat_s {self.heartbeat_s}, "
                "or running jobs are taken for dead"
            )
        return self


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

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        level = value.strip().upper()
        level = {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(level, level)
        if level not in LOG_LEVELS:
            raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}")
        return level

    @field_validator("database_url")
    @classmethod
    def _supported_database(cls, value: str | None) -> str | None:
        # The value is never echoed: it may hold a password.
        if value is None:
            return None
        try:
            url = make_url(value)
        except (ArgumentError, ValueError):
            raise ValueError(f"not a database URL; namae works with {SUPPORTED_DATABASES}") from None
        backend, driver = url.get_backend_name(), url.get_driver_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"{backend} is not supported; namae works with {SUPPORTED_DATABASES}")
        if backend == "postgresql" and driver not in ("psycopg", "psycopg2"):
            raise ValueError(
                f"the {driver} driver is not supported; use postgresql:// (namae talks to it with psycopg)"
            )
        if url.port is not None and not 1 <= url.port <= 65535:
            raise ValueError(f"port {url.port} is not a TCP port (1-65535)")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_toml_path())
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


def _toml_path() -> str:
    return os.environ.get("NAMAE_CONFIG", "namae.toml")


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


def parse_shard_ids(text: str) -> list[int]:
    """Shard ids written as "0,1", "4-7", "0,2-3" or "[0, 1]"."""
    ids: list[int] = []
    for part in text.strip().strip("[]").split(","):
        part = part.strip()
        if not part:
            continue
        low, dash, high = part.partition("-")
        try:
            first = int(low)
            last = int(high) if dash else first
        except ValueError:
            raise ValueError(f"shard ids look like 0,1 or 4-7, not {text!r}") from None
        if last < first:
            raise ValueError(f"shard id range {part!r} runs backwards")
        ids.extend(range(first, last + 1))
    return ids


def secret_value(secret: SecretStr | None) -> str | None:
    return secret.get_secret_value() if secret is not None else None


# Values never repeated in an error message: they are, or may contain, secrets.
_UNSAID = {"token", "client_id", "client_secret", "password", "imgur_client_id", "database_url"}


def load_settings(**values: Any) -> Settings:
    """The settings from the environment, `.env` and the TOML file (and `values`), or a CatalogError
    whose message names each invalid setting on one line."""
    try:
        return Settings(**values)
    except ValidationError as exc:
        raise CatalogError(f"invalid configuration: {describe_errors(exc)}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"invalid configuration: {_toml_path()} is not TOML: {exc}") from None
    except ValueError as exc:  # a nested JSON value that does not parse
        reason = " ".join(str(exc).split())
        raise CatalogError(f"invalid configuration: {reason}") from None


def describe_errors(exc: ValidationError) -> str:
    """pydantic's report as one line: `NAMAE_SECTION__NAME='value': why; ...`."""
    said = []
    for error in exc.errors(include_url=False):
        path = [str(part) for part in error["loc"] if not isinstance(part, int)]
        name = "NAMAE_" + "__".join(part.upper() for part in path) if path else "the configuration"
        reason = error["msg"].removeprefix("Value error, ")
        value = error.get("input")
        shown = isinstance(value, str | int | float) and not (set(path) & _UNSAID)
        said.append(f"{name}={value!r}: {reason}" if shown else f"{name}: {reason}")
    return "; ".join(said)

"""Configuration: `NAMAE_*` environment variables, an optional TOML file and `.env`.

Precedence, highest first: explicit arguments, environment, `.env`, the TOML file (`NAMAE_CONFIG`,
default `namae.toml` in the working directory), defaults. Nested sections use `__` in variable
names: `NAMAE_DISCORD__TOKEN`, `NAMAE_REDDIT__CLIENT_ID`.

Every value is checked here, when the settings load, so that a command refuses a setting that
cannot work (a negative size, a fraction outside [0, 1], a database URL namae cannot speak, a
schedule the worker cannot run) with one line naming it, before it starts anything;
`load_settings` turns pydantic's report into that line.

This module owns `Settings` (the top level and its sources), the sections media reads (images,
faces, downloads: media may import this module only), loading and masking; the other sections are
in `catalog.settings_sections`, the shared annotated types and checks in `catalog.settings_types`.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from catalog.errors import CatalogError
from catalog.settings_sections import (
    BotSettings,
    MemorySettings,
    RedditSettings,
    RegistrySettings,
    StoreSettings,
    TrainSettings,
    WorkerSettings,
)
from catalog.settings_types import Count, Fraction, HttpUrl, NonNegative, Positive

CASCADE_URL = (
    "https://raw.githubusercontent.com/nagadomi/lbpcascade_animeface/master/lbpcascade_animeface.xml"
)
CASCADE_SHA256 = "9376d30ac38db6bda2a68b88b3b76bbd7e6aa33af47f7f5c76bc88ca75f1ce30"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
SUPPORTED_DATABASES = (
    "SQLite (sqlite:///path/to/namae.db) and PostgreSQL (postgresql://user:password@host:5432/namae)"
)


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
    # The trained finder looks at a picture at its card's side (320 px long); where it finds no
    # face, or one under `net_second_below` of the long side, it looks again at this side and keeps
    # both looks' faces (0: one look). `python -m bench.scenes` measured it: collages of several
    # characters' posts, faces found 83% -> 96%, named right 74% -> 88%; posts with no face found
    # 4.8% -> 2.9%; hand-boxed illustrations unchanged (docs/posts-and-scenes.md, "several
    # characters in one picture").
    net_second_side: int = Field(default=640, ge=0)
    net_second_below: Fraction = 0.15
    # ... and also where it scored a detection clear of the faces it kept from this share of its
    # threshold up (1: never): collage faces missed beside larger ones 3.8% -> 1.8%, with 22 more
    # of 216 test posts looked at twice (docs/posts-and-scenes.md, "several characters in one
    # picture").
    net_second_unsure: Fraction = 0.9
    cascade_path: Path | None = None
    cascade_url: HttpUrl = CASCADE_URL
    cascade_sha256: str = Field(default=CASCADE_SHA256, pattern=r"^[0-9a-fA-F]{64}$")
    # OpenCV's detectMultiScale needs a factor above 1.
    scale_factor: float = Field(default=1.1, gt=1.0)
    min_neighbors: int = Field(default=5, ge=0)
    # When the cascade finds no face, the answer path looks again at the boxes it finds with this
    # many neighbours (None: not at all) and names one only past the no-face bar (`models.answer`).
    rescue_neighbors: int | None = Field(default=1, ge=0)
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

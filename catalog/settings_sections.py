"""The sections of `Settings` for Reddit, training, the character memory, the model registry, the
object store, the Discord bot and the worker, each with its checks.

The sections `media` reads (images, faces, downloads) stay in `catalog.settings`: media may import
that module only (DESIGN.md, "Packages").
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from catalog.schedules import schedule_trigger
from catalog.settings_types import (
    Backbone,
    Count,
    Fraction,
    HttpUrl,
    NonNegative,
    Positive,
    parse_shard_ids,
    web_url,
)


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
    # Dev set, 6 epochs (docs/input-size-and-int8.md): 160 px halves the strangers named (22.8% -> 10.8%) and
    # names characters added from 5 faces better (top-1 0.804 -> 0.843) than 128 px, for ~1.9x the
    # CPU training time and 1.2x the model's answer time (one thread, with its int8 graph).
    image_size: int = Field(default=160, ge=32, le=1024)
    epochs: Count = 6
    batch_size: Count = 64
    lr: Positive = 2e-3
    weight_decay: NonNegative = 0.05
    # The memory's embedding needs it: without it the head is a little better (dev set, 128 px, 6
    # epochs: closed-set macro-F1 0.980 against 0.973) but a character added from 5 faces is named
    # right far less often (top-1 among 20 characters 0.673 against 0.804); 0.3 measured as 0.1.
    label_smoothing: float = Field(default=0.1, ge=0.0, lt=1.0)
    # Share of training faces shrunk and enlarged back (trainer/augment.py `LowResolution`), as the
    # small faces of group pictures reach the model. Off: at 0.3 (dev set, seed 7) the head gained
    # (test macro-F1 0.969 -> 0.980; crops at 32 px named right 0.841 -> 0.880), but strangers were
    # named 13.0% against 7.2% (docs/open-world.md).
    low_resolution: float = Field(default=0.0, ge=0.0, le=1.0)
    # Training runs of this recipe (seeds seed, seed + 1, ...) on one split, exported as one graph
    # (trainer/ensemble.py) with member 1's own graph as its first look (trainer/first_look.py):
    # member 1 decides every face, every member the faces near its bars. Dev set, default seed,
    # through the product: strangers named 10.3% (one run; 12.7% over eleven) -> 9.3% (three),
    # a new character from 5 / 20 faces 0.881 / 0.901 -> 0.886 / 0.909, the faces near member 1's
    # bars 6% of known ones (18% of strangers); the bot's reply 0.95x-1.04x with member 1 alone and
    # 1.09x-1.29x with every member on every face. N times the training time (docs/open-world.md).
    members: int = Field(default=3, ge=1, le=4)
    min_images_per_class: Count = 8
    max_images_per_class: Count = 2000
    target_precision: float = Field(default=0.9, gt=0.0, le=1.0)
    # The objective (trainer.losses): "cross_entropy", or a margin loss over a cosine head.
    loss: Literal["cross_entropy", "cosface", "arcface"] = "cross_entropy"
    margin: float = Field(default=0.2, ge=0.0, le=1.0)
    val_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    test_fraction: float = Field(default=0.15, gt=0.0, lt=1.0)
    seed: int = Field(default=1234, ge=0)
    # Training from a folder: of a picture with several faces, keep the one face the active model
    # names as the folder's character (trainer/group_faces.py); off, or without a model, such
    # pictures are skipped. Off by default: on JLaoo posts beside the dev set (23 characters, 172
    # faces chosen) it named more group faces but the dev set's known faces lost a point of
    # macro-F1 (0.956 -> 0.947) and one-face posts precision (0.981 -> 0.953).
    pick_group_faces: bool = False
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
    # Share of held-out faces of trained characters that may fall under the bar for "a character I
    # don't know": the coverage given up so that characters the model never saw are not named
    # (dev set, 3-epoch model: coverage 92.3%, strangers named 57% -> 39.5%).
    max_unanswered: float = Field(default=0.08, ge=0.0, lt=1.0)
    # Weight of a face's colour histogram beside the network's embedding in the memory's vector
    # (models/colour.py), written to the card by the trainer; 0: the embedding alone. 0.2 beside an
    # embedding with the middle features at 0.25 weighs the colours against the last features as
    # 0.25 did without them (0.2 x 1.25): the gate's vector is then the one measured before them.
    colour: float = Field(default=0.2, ge=0.0, le=4.0)
    # Weight of the network's middle features beside its last ones in the graph's embedding
    # (trainer/backbones.py, `Classifier.features_and_embedding`; efficientnet_lite0 only), fixed
    # when the trainer exports a version; the card's `open_set.gate` leaves them out of the bars
    # for "anyone at all?". 0: the last features alone.
    middle: float = Field(default=0.25, ge=0.0, le=4.0)
    # Fit the bars on held-out faces' two looks (as seen and mirrored) averaged, and have answers
    # near a bar look again at the mirror image (models/openset.py, `open_set.second_look` on the card).
    mirror: bool = True
    # Weight of the head's largest raw logit beside the cosine in a trained character's evidence
    # for "anyone at all?" (models/openset.py, `open_set.familiarity` on the card), in standard
    # deviations of the held-out faces' best cosine per standard deviation of the logit; 0: none.
    familiarity: float = Field(default=0.5, ge=0.0, le=4.0)
    # How often the bot reads faces that landed in the catalog since it last looked, seconds.
    poll_s: float = Field(default=10.0, gt=0.0)


class RegistrySettings(BaseModel):
    promotion_margin: Fraction = 0.01
    # The active version and its rollback target always stay.
    keep_last: int = Field(default=5, ge=2)
    # Readers (bot, classify, eval, memory updates) run a version's int8 graph when it has one and
    # it answers like the float graph on this machine (models/int8.py); false: the float graph.
    int8: bool = True


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
    gateway_url: Annotated[str, web_url("ws", "wss")] | None = None
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

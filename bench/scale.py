"""A sharded deployment under sustained load, against one unsharded bot process, same run.

    .venv/bin/python -m bench.scale [--quick] [--results DIR] [--registry PATH] [--database-url URL]
                                    [--store folder|s3]

The fake Discord (in this process) holds 1,000 guilds, each with a channel where the bot
answers. Candidate: 8 shards in 4 `namae bot --shard-count 8 --shard-ids a,b` processes.
Baseline: one `namae bot` process with no shard settings (it asks GET /gateway/bot and runs the
one shard Discord recommends for 1,000 guilds). Both run beside 2 `namae worker` processes
(schedules off: they poll the job queue) on one PostgreSQL catalog and one image store, with
the same settings (two images classified at once per process), and answer the same load:
members post one picture at a time in random guilds, 16 posts outstanding at once (a closed
loop that keeps every process busy) for 45 s after a 10 s warm-up; before that, 2 at once for
20 s (a light load: latency without a queue). Every picture is distinct (a JPEG comment makes the
bytes unique; the pixels repeat a drawn pool of 768x768 portraits and 1280x720 scenes) and the
bot's result cache is off, so every one is decoded, searched for faces and classified. Two rounds
alternate the deployments, one at a time (both at once would answer twice), each started afresh.

Reported, per deployment: images answered per second and p50/p95 reply latency (post to the
fake's record of the reply) under the heavy load, p50/p95 under the light one, replies per bot
process, CPU milliseconds per answered image by role (bots, workers, PostgreSQL, this process:
the fake Discord and the load), start-up time, and the IDENTIFY pacing the fake saw (Discord's
one per 5 s per bucket; answers with op 9 must be 0).

The object store (`--store`), as a deployment has it: `folder` (default), the data directory's
folders, which every process of this one machine shares; `s3`, a bucket on the test suite's S3
server (Ceph RGW on 127.0.0.1, or the one NAMAE_TEST_S3_URL names), the model published there
as a trainer would, and every bot and worker process with a data directory of its own (a cache),
as on machines of their own.

--quick: 40 guilds, 4 shards in 2 processes, 1 worker, seconds of load; its figures mean nothing.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import shutil
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from bench.deployment import Plant, postgres_cpu, publish, store_environment, throwaway_bucket
from bench.harness import Target, cascade_path, emit, parser, percentile, ratio, summary
from bench.stations import Pictures, say
from catalog.characters import NewCharacter, add_character
from catalog.db import open_catalog
from catalog.guilds import GuildSettingsStore
from catalog.settings import Settings
from catalog.settings_sections import StoreSettings
from models.card import read_card
from models.registry import Registry
from sandbox.discord import FakeDiscord
from sandbox.discord.sharding import ShardingRules, shard_of

READY_TIMEOUT_S = 600.0
REPLY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Sizes:
    guilds: int
    shards: int
    bot_processes: int
    workers: int
    rounds: int
    warmup_s: float
    measure_s: float
    in_flight: int  # posts outstanding at once: enough to keep every bot process busy
    light_s: float
    light_in_flight: int  # a light load: the reply latency without a queue
    pool: int  # distinct drawn pictures
    identify_interval_s: float


FULL = Sizes(1000, 8, 4, 2, 2, 10.0, 45.0, 16, 20.0, 2, 60, 5.0)
QUICK = Sizes(40, 4, 2, 1, 1, 1.0, 3.0, 4, 1.5, 1, 6, 0.2)


def unique(jpeg: bytes, n: int) -> bytes:
    """The same picture with a JPEG comment of its own: new bytes (sha256), same pixels."""
    comment = f"namae-bench-scale {n}".encode()
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


@dataclass
class Phase:
    deployment: str
    light_latencies_ms: list[float]
    latencies_ms: list[float]
    answered: int
    seconds: float
    replies_by_process: list[int]
    cpu_per_image_ms: dict[str, float]
    startup_s: float
    identify: dict[str, Any]

    @property
    def images_per_s(self) -> float:
        return self.answered / self.seconds


class Bench:
    def __init__(self, sizes: Sizes, args: Any, tmp: Path, store: StoreSettings) -> None:
        self.sizes = sizes
        self.args = args
        self.tmp = tmp
        self.store = store
        self.rng = random.Random(args.seed)
        self.drawn = 0  # pictures posted in this phase: the pool index
        self.posted = 0  # pictures posted in the run: what makes each one's bytes unique
        self.workers = Plant("workers")

    async def setup(self, registry_root: Path, database_url: str, cascade: Path) -> None:
        rules = ShardingRules(identify_interval_s=self.sizes.identify_interval_s)
        self.fake = FakeDiscord(sharding=rules)
        await self.fake.start()
        self.data = self.tmp / "data"
        settings = Settings(data_dir=self.data, database_url=database_url, store=self.store, _env_file=None)
        if self.store.url:
            publish(registry_root, Registry.from_settings(settings))
        else:
            shutil.copytree(registry_root, settings.registry_dir)
        engine = open_catalog(database_url)
        for label in read_card(Registry.from_settings(settings).require_active()[1]).labels:
            add_character(engine, NewCharacter(name=label.replace("_", " ").title()))
        store = GuildSettingsStore(engine)
        self.channels: list[tuple[int, int, int]] = []  # guild, channel, member
        for i in range(self.sizes.guilds):
            guild = self.fake.add_guild(f"community {i}")
            channel = guild.add_channel("pictures")
            self.channels.append((guild.id, channel, guild.add_member(f"member {i}")))
            store.enable_channel(guild.id, channel)
        engine.dispose()
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("NAMAE_")} | {
            "NAMAE_CONFIG": str(self.tmp / "absent.toml"),
            "NAMAE_DATA_DIR": str(self.data),
            "NAMAE_DATABASE_URL": database_url,
            "NAMAE_FACES__CASCADE_PATH": str(cascade),
            "NAMAE_LOG_LEVEL": "WARNING",
            "NAMAE_DISCORD__TOKEN": self.fake.token,
            "NAMAE_DISCORD__API_BASE": self.fake.api_base,
            "NAMAE_DISCORD__GATEWAY_URL": self.fake.gateway_url,
            "NAMAE_DISCORD__IDENTIFY_INTERVAL_S": str(self.sizes.identify_interval_s),
            # Cooldowns would drop posts; a cache would answer without classifying.
            "NAMAE_DISCORD__MEMBER_COOLDOWN_RATE": "1000000",
            "NAMAE_DISCORD__GUILD_COOLDOWN_RATE": "1000000",
            "NAMAE_DISCORD__CACHE_SIZE": "0",
            "NAMAE_WORKER__RESCRAPE_SCHEDULE": "off",
            "NAMAE_WORKER__RETRAIN_SCHEDULE": "off",
            "NAMAE_WORKER__RETRAIN_CHECK_SCHEDULE": "off",
        }
        self.env |= store_environment(self.store)

    def env_of(self, process: str) -> dict[str, str]:
        """The environment of one process: the shared data directory with the folder store, a
        data directory of its own (an empty cache) with a bucket."""
        if not self.store.url:
            return self.env
        data = self.tmp / process / "data"
        data.mkdir(parents=True, exist_ok=True)
        return self.env | {"NAMAE_DATA_DIR": str(data)}

    def deployments(self) -> dict[str, list[list[str]]]:
        s = self.sizes
        per = s.shards // s.bot_processes
        ranges = [",".join(str(i) for i in range(p * per, (p + 1) * per)) for p in range(s.bot_processes)]
        return {
            "unsharded": [["bot"]],
            "sharded": [["bot", "--shard-count", str(s.shards), "--shard-ids", r] for r in ranges],
        }

    async def run_phase(
        self, name: str, commands: list[list[str]], pictures: list[bytes], cluster: Any
    ) -> Phase:
        self.fake.forget_closed_sessions()
        # Both deployments get the same sequence of guilds and pictures.
        self.rng = random.Random(self.args.seed)
        self.drawn = 0
        expected = (
            {(0, 1)} if name == "unsharded" else {(i, self.sizes.shards) for i in range(self.sizes.shards)}
        )
        judged_before = len(self.fake.identify_log)
        bots = Plant(name)
        started = time.monotonic()
        for i, command in enumerate(commands):
            bots.start(command, self.env_of(f"{name}-{i}"), self.tmp / f"{name}-{i}.log")
        await self.fake.wait_until(
            lambda: True if expected <= set(self.fake.live_shards()) else None,
            timeout=READY_TIMEOUT_S,
            what=f"{name}: sessions for {len(expected)} shards",
        )
        startup = time.monotonic() - started
        say(f"{name}: {len(commands)} bot process(es) ready in {startup:.1f} s")
        s = self.sizes
        light, _, _, _ = await self.load(pictures, s.light_in_flight, s.warmup_s, s.light_s)
        cpu_before = {"bots": bots.cpu_seconds(), "workers": self.workers.cpu_seconds(),
                      "postgres": postgres_cpu(cluster), "bench": _self_cpu()}  # fmt: skip
        latencies, answered, seconds, by_shard = await self.load(
            pictures, s.in_flight, s.warmup_s, s.measure_s
        )
        cpu = {"bots": bots.cpu_seconds(), "workers": self.workers.cpu_seconds(),
               "postgres": postgres_cpu(cluster), "bench": _self_cpu()}  # fmt: skip
        bots.stop()
        await self.fake.wait_until(
            lambda: True if not self.fake.live_shards() else None, timeout=60, what=f"{name} to disconnect"
        )
        per_process = len(expected) // len(commands)
        replies = [sum(by_shard.get(s, 0) for s in range(p * per_process, (p + 1) * per_process))
                   for p in range(len(commands))]  # fmt: skip
        judged = self.fake.identify_log[judged_before:]
        phase = Phase(
            deployment=name,
            light_latencies_ms=light,
            latencies_ms=latencies,
            answered=answered,
            seconds=seconds,
            replies_by_process=replies,
            cpu_per_image_ms={k: round((cpu[k] - cpu_before[k]) / answered * 1000, 2) for k in cpu},
            startup_s=round(startup, 1),
            identify=identify_pacing(judged, self.sizes.identify_interval_s),
        )
        say(f"{name}: {phase.images_per_s:.1f} images/s, p50 {percentile(latencies, 50):.0f} ms")
        return phase

    async def load(
        self, pictures: list[bytes], in_flight: int, warmup_s: float, measure_s: float
    ) -> tuple[list[float], int, float, dict[int, int]]:
        """Closed loop: `in_flight` members each post, wait for the answer, post again; replies to
        posts made after the warm-up and answered within `measure_s` count."""
        warm_until = time.monotonic() + warmup_s
        end = warm_until + measure_s
        latencies: list[float] = []
        by_shard: dict[int, int] = {}
        shards = 1 if not self.fake.live_shards() else max(c for _, c in self.fake.live_shards())

        async def member() -> None:
            while time.monotonic() < end:
                guild, channel, author = self.channels[self.rng.randrange(len(self.channels))]
                data = unique(pictures[self.drawn % len(pictures)], self.posted)
                self.drawn += 1
                self.posted += 1
                message = await self.fake.post_message(
                    channel, author, attachments=[("p.jpg", data, "image/jpeg")]
                )
                posted = time.monotonic()
                reply = await self.fake.wait_for_message(reply_to=message, timeout=REPLY_TIMEOUT_S)
                self.fake.forget_attachments(message)
                if posted >= warm_until and reply.created_at <= end:
                    latencies.append((reply.created_at - posted) * 1000)
                    shard = shard_of(guild, shards)
                    by_shard[shard] = by_shard.get(shard, 0) + 1

        await asyncio.gather(*(member() for _ in range(in_flight)))
        return latencies, len(latencies), measure_s, by_shard


def identify_pacing(judged: list[Any], interval: float) -> dict[str, Any]:
    ready = [r for r in judged if r.outcome == "ready"]
    gaps: list[float] = []
    by_bucket: dict[int, list[float]] = {}
    for record in ready:
        by_bucket.setdefault(record.bucket, []).append(record.at)
    for times in by_bucket.values():
        gaps += [b - a for a, b in itertools.pairwise(times)]
    return {
        "identifies": len(ready),
        "refused_op9": sum(r.outcome == "paced" for r in judged),
        "min_gap_s": round(min(gaps), 3) if gaps else None,
        "interval_s": interval,
        "first_to_last_s": round(ready[-1].at - ready[0].at, 2) if len(ready) > 1 else 0.0,
    }


def _self_cpu() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


def draw_pool(count: int, seed: int) -> list[bytes]:
    pictures = Pictures(seed)
    return pictures.take(count)


async def measure(
    bench: Bench, registry_root: Path, database_url: str, cluster: Any
) -> dict[str, list[Phase]]:
    await bench.setup(registry_root, database_url, cascade_path())
    try:
        for i in range(bench.sizes.workers):
            bench.workers.start(
                ["worker", "--name", f"bench-{i}"], bench.env_of(f"worker-{i}"), bench.tmp / f"worker-{i}.log"
            )
        pool = draw_pool(bench.sizes.pool, bench.args.seed)
        say(f"{len(pool)} pictures drawn; {bench.sizes.guilds} guilds, {bench.sizes.workers} worker(s)")
        phases: dict[str, list[Phase]] = {"unsharded": [], "sharded": []}
        order = list(bench.deployments().items())
        for r in range(bench.sizes.rounds):
            for name, commands in order if r % 2 == 0 else order[::-1]:
                phases[name].append(await bench.run_phase(name, commands, pool, cluster))
        bench.workers.stop()
        return phases
    finally:
        await bench.fake.stop()


def report(phases: list[Phase]) -> dict[str, Any]:
    latencies = [ms for p in phases for ms in p.latencies_ms]
    return {
        "images_per_s": round(sum(p.answered for p in phases) / sum(p.seconds for p in phases), 2),
        "images_per_s_by_round": [round(p.images_per_s, 2) for p in phases],
        "reply_latency": summary(latencies, 1),
        "reply_latency_light": summary([ms for p in phases for ms in p.light_latencies_ms], 1),
        "replies_by_process": [p.replies_by_process for p in phases],
        "cpu_per_image_ms": [p.cpu_per_image_ms for p in phases],
        "startup_s": [p.startup_s for p in phases],
        "identify": [p.identify for p in phases],
    }


def main() -> None:
    started = time.perf_counter()
    args_parser = parser(__doc__)
    args_parser.add_argument("--registry", type=Path, default=None, help="a registry with an active model")
    args_parser.add_argument("--database-url", default=None, help="PostgreSQL (default: a throwaway cluster)")
    args_parser.add_argument(
        "--store", choices=("folder", "s3"), default="folder", help="the data directory, or an S3 bucket"
    )
    args = args_parser.parse_args()
    sizes = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory(prefix="namae-bench-scale-") as name, ExitStack() as stack:
        tmp = Path(name)
        cluster = None
        database_url = args.database_url
        if database_url is None:
            # The test suite's throwaway cluster (Debian's postgresql binaries), on 127.0.0.1.
            from tests.postgres_server import ThrowawayCluster

            cluster = ThrowawayCluster()
            database_url = cluster.start()
            stack.callback(cluster.stop)
        store = StoreSettings() if args.store == "folder" else stack.enter_context(throwaway_bucket())
        registry_root, model = _model(args.registry, tmp, quick=args.quick)
        say(f"model {model['version']} ({model['backbone']}); catalog {database_url.split('@')[-1]}")
        load_before = os.getloadavg()
        phases = asyncio.run(measure(Bench(sizes, args, tmp, store), registry_root, database_url, cluster))
        load_after = os.getloadavg()
    baseline, candidate = report(phases["unsharded"]), report(phases["sharded"])
    pacing = [i for p in phases["sharded"] for i in [p.identify]]
    refused = sum(i["refused_op9"] for i in pacing)
    gaps = [i["min_gap_s"] for i in pacing if i["min_gap_s"] is not None]
    results = {
        "sizes": sizes.__dict__,
        "store": args.store,
        "database": "postgresql",
        "model": model,
        # Other work on the machine takes cores from every process here: say how much there was.
        "load_average_1m": {"start": round(load_before[0], 1), "end": round(load_after[0], 1)},
        "unsharded": baseline,
        "sharded": candidate,
    }
    ratios = {
        "sharded_over_unsharded_images_per_s": ratio(candidate["images_per_s"], baseline["images_per_s"]),
        "unsharded_over_sharded_p50": ratio(
            baseline["reply_latency"]["median_ms"], candidate["reply_latency"]["median_ms"]
        ),
        "unsharded_over_sharded_p95": ratio(
            baseline["reply_latency"]["p95_ms"], candidate["reply_latency"]["p95_ms"]
        ),
        "unsharded_over_sharded_p50_light": ratio(
            baseline["reply_latency_light"]["median_ms"], candidate["reply_latency_light"]["median_ms"]
        ),
    }
    targets = [
        Target("IDENTIFYs refused for pacing (op 9)", 0, refused, "count"),
        Target(
            "shortest IDENTIFY gap in a bucket", sizes.identify_interval_s, min(gaps, default=0.0), "s", False
        ),
    ]
    payload = {
        "baseline": "one `namae bot` process, unsharded (Discord's recommended 1 shard), same load, same run",
        "candidate": (
            f"{sizes.shards} shards in {sizes.bot_processes} `namae bot --shard-ids` processes; "
            f"{sizes.workers} workers, PostgreSQL, the {args.store} store"
        ),
        "results": results,
        "ratios": ratios,
        "targets": [t.as_dict() for t in targets],
    }
    emit("scale", payload, args, started)


def _model(registry: Path | None, tmp: Path, *, quick: bool) -> tuple[Path, dict[str, Any]]:
    if registry is not None:
        card = read_card(Registry(registry).require_active()[1])
        return registry, {"version": card.version, "backbone": card.backbone, "image_size": card.image_size}
    from bench.model import export_default_model

    model = export_default_model(tmp / "models", classes=6 if quick else 20)
    return model.registry_root, {
        "version": model.version,
        "backbone": model.backbone,
        "image_size": model.image_size,
    }


if __name__ == "__main__":
    main()

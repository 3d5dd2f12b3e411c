"""A worker killed with SIGKILL in the middle of a job: the job is requeued when the worker comes
back, it completes, and the catalog ends as if nothing had happened. The worker runs as a real
`namae worker` process; its job runs in a child that must die with it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from sqlalchemy import Engine, func, select

from catalog.db import make_engine, session_scope, upgrade
from catalog.jobs import JobQueue
from catalog.schema import Image, JobStatus
from catalog.settings import Settings
from catalog.settings_sections import RedditSettings
from models.registry import Registry
from scraper.folder import import_folder
from scraper.run import scrape
from tests.scraper.test_scrape_e2e import add_world_characters, scrape_settings, snapshot

REPO = Path(__file__).resolve().parents[2]
WORKER_NAME = "crash-test-worker"


def worker_env(settings: Settings, **worker: Any) -> dict[str, str]:
    """The settings as NAMAE_* variables (nested sections as JSON), secrets in clear; `worker`
    overrides the worker section's test values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NAMAE_")}
    env["PYTHONPATH"] = str(REPO)
    env["NAMAE_CONFIG"] = str(settings.data_dir / "absent.toml")
    env["NAMAE_DATA_DIR"] = str(settings.data_dir)
    env["NAMAE_LOG_LEVEL"] = "INFO"
    if settings.database_url:
        env["NAMAE_DATABASE_URL"] = settings.database_url
    reddit = settings.reddit.model_dump(mode="json")
    for key in ("client_id", "client_secret", "imgur_client_id"):
        secret = getattr(settings.reddit, key)
        reddit[key] = secret.get_secret_value() if secret is not None else None
    env["NAMAE_REDDIT"] = json.dumps(reddit)
    store = settings.store.model_dump(mode="json")
    for key in ("access_key_id", "secret_access_key", "session_token"):
        secret = getattr(settings.store, key)
        store[key] = secret.get_secret_value() if secret is not None else None
    env["NAMAE_STORE"] = json.dumps(store)
    env["NAMAE_DOWNLOAD"] = settings.download.model_dump_json()
    env["NAMAE_FACES"] = settings.faces.model_dump_json()
    env["NAMAE_TRAIN"] = settings.train.model_dump_json()
    env["NAMAE_WORKER"] = json.dumps(
        {
            "rescrape_schedule": "off",
            "retrain_schedule": "off",
            "retrain_check_schedule": "off",
            "poll_interval_s": 0.1,
            "heartbeat_s": 0.5,
            **worker,
        }
    )
    return env


async def start_worker(
    settings: Settings, *extra: str, name: str = WORKER_NAME, **worker: Any
) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "namae", "worker", "--name", name, *extra,
        cwd=REPO,
        env=worker_env(settings, **worker),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def kill_when(process: asyncio.subprocess.Process, ready, what: str, timeout: float = 120) -> list[int]:
    """SIGKILL the worker (only the worker) once `ready()` holds; return its children's pids."""
    deadline = time.monotonic() + timeout
    while not ready():
        if process.returncode is not None:
            errors = await process.stderr.read() if process.stderr else b""
            pytest.fail(f"the worker ended before {what}: {errors.decode()[-3000:]}")
        assert time.monotonic() < deadline, f"no {what} within {timeout:.0f} s"
        await asyncio.sleep(0.05)  # lets the fake Reddit in this loop answer; polling the catalog
    children = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    process.send_signal(signal.SIGKILL)
    await asyncio.wait_for(process.wait(), 10)
    return children


def assert_children_died(pids: list[int]) -> None:
    """The job's child process must not outlive its worker (it would keep writing)."""
    alive = [psutil.Process(pid) for pid in pids if psutil.pid_exists(pid)]
    _gone, still = psutil.wait_procs(alive, timeout=10)
    assert not [p for p in still if p.status() != psutil.STATUS_ZOMBIE], "orphaned job process"


async def finish_queue(settings: Settings) -> None:
    process = await start_worker(settings, "--until-idle")
    _, errors = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode == 0, errors.decode()[-3000:]


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_worker_killed_mid_scrape_requeues_and_finishes_after_restart(
    settings: Settings, reddit_world: Any, reddit_settings: RedditSettings, tmp_path: Path
) -> None:
    expected = reddit_world.expected
    hosts = reddit_world.fake.hosts

    def catalog(name: str) -> tuple[Settings, Engine]:
        local = scrape_settings(settings, reddit_settings, hosts).model_copy(
            update={"data_dir": tmp_path / name}
        )
        local.data_dir.mkdir()
        engine = make_engine(local.resolved_database_url)
        upgrade(engine)
        add_world_characters(engine, expected)
        return local, engine

    reference_settings, reference_engine = catalog("reference")
    await scrape(reference_settings, reference_engine)
    reference = snapshot(reference_engine)

    killed_settings, engine = catalog("killed")
    queue = JobQueue(engine)
    job_id = queue.enqueue("scrape", {}, requested_by="test")

    def images() -> int:
        with session_scope(engine) as session:
            return session.scalar(select(func.count(Image.id))) or 0

    worker = await start_worker(killed_settings)
    children = await kill_when(worker, lambda: images() >= 10, "ten images committed")
    assert_children_died(children)
    job = queue.get(job_id)
    assert job.status == JobStatus.running and job.claimed_by == WORKER_NAME
    assert images() < len(reference["images"]), "the worker was killed mid-run"

    await finish_queue(killed_settings)
    job = queue.get(job_id)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 2
    snapshot_after = snapshot(engine)
    assert snapshot_after == reference


@pytest.mark.slow
@pytest.mark.timeout(400)
async def test_worker_killed_mid_training_requeues_and_finishes_after_restart(
    settings: Settings, sqlite_engine: Engine, synthetic_dataset: Any
) -> None:
    import_folder(settings, sqlite_engine, synthetic_dataset.root)
    local = settings.model_copy(
        update={
            "train": settings.train.model_copy(
                update={"epochs": 3, "image_size": 64, "min_images_per_class": 4}
            )
        }
    )
    queue = JobQueue(sqlite_engine)
    job_id = queue.enqueue("train", {"promote": True}, requested_by="test")

    def training() -> bool:
        job = queue.get(job_id)
        return job.status == JobStatus.running and job.progress > 0.05

    worker = await start_worker(local)
    children = await kill_when(worker, training, "training progress")
    assert_children_died(children)
    registry = Registry(local.registry_dir)
    assert registry.active_version() is None and registry.versions() == []

    await finish_queue(local)
    job = queue.get(job_id)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 2
    assert job.result["promotion"]["promoted"] is True
    assert registry.active_version() == job.result["version"]
    assert [entry.version for entry in registry.versions()] == [job.result["version"]]

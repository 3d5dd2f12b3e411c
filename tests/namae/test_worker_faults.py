"""PostgreSQL restarted while the worker trains a model: the job pauses, finishes once, and the
worker goes on claiming jobs. Nothing is lost and nothing runs twice."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import Engine

from catalog.jobs import JobQueue
from catalog.schema import JobStatus
from catalog.settings import Settings
from models.registry import Registry
from namae.worker import Worker
from scraper.folder import import_folder
from tests.namae.waiting import wait_until
from tests.postgres_server import ThrowawayCluster


@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_postgres_restart_during_training_loses_and_duplicates_nothing(
    settings: Settings,
    postgres_url: str,
    postgres_engine: Engine,
    postgres_cluster: ThrowawayCluster | None,
    synthetic_dataset: Any,
) -> None:
    if postgres_cluster is None:
        pytest.skip("NAMAE_TEST_POSTGRES_URL names an external server, which this test must not restart")
    local = settings.model_copy(
        update={
            "database_url": postgres_url,
            "train": settings.train.model_copy(
                update={"epochs": 4, "image_size": 48, "min_images_per_class": 4}
            ),
            "worker": settings.worker.model_copy(
                update={
                    "rescrape_schedule": "off",
                    "retrain_schedule": "off",
                    "retrain_check_schedule": "off",
                    "poll_interval_s": 0.1,
                    "heartbeat_s": 0.3,
                }
            ),
        }
    )
    import_folder(local, postgres_engine, synthetic_dataset.root)
    queue = JobQueue(postgres_engine)
    train = queue.enqueue("train", {"promote": True}, requested_by="test")
    worker = Worker(local, engine=postgres_engine, name="pg-fault-worker")
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        wait_until(lambda: queue.get(train).progress > 0.05, 180, "training progress")
        postgres_cluster.restart()  # every open connection is cut
        after = queue.enqueue("promote", {"version": "v9999-none"}, requested_by="test")
        wait_until(
            lambda: queue.get(train).status in (JobStatus.succeeded, JobStatus.failed), 240, "training end"
        )
        wait_until(
            lambda: queue.get(after).status in (JobStatus.succeeded, JobStatus.failed), 60, "the next job"
        )
    finally:
        worker.stop()
        thread.join(timeout=60)
    job = queue.get(train)
    assert job.status == JobStatus.succeeded, job.error
    assert job.attempts == 1, "the training ran once"
    registry = Registry(local.registry_dir)
    assert [entry.version for entry in registry.versions()] == [job.result["version"]]
    assert registry.active_version() == job.result["version"]
    assert queue.get(after).status == JobStatus.failed  # it ran: the worker kept claiming after the restart
    assert not thread.is_alive()

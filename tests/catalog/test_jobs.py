"""The job queue: kinds and typed parameters, exactly-once claims, heartbeats, retries, requeues."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from catalog.db import session_scope
from catalog.errors import CatalogError
from catalog.jobs import JobKind, JobQueue, ScrapeParams, TrainParams
from catalog.schema import Job, JobStatus, utcnow


def test_lifecycle_progress_finish(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("scrape", {"character": "Aiko"}, requested_by="mod#1")
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.id == job_id and claimed.params == {"character": "Aiko"}
    assert queue.claim("w2") is None
    assert queue.progress(job_id, "w1", 0.5, "half way")
    job = queue.get(job_id)
    assert job.status == JobStatus.running and job.progress == 0.5 and job.message == "half way"
    assert queue.finish(job_id, "w1", {"new": 3})
    job = queue.get(job_id)
    assert job.status == JobStatus.succeeded and job.result == {"new": 3} and job.finished_at


def test_parameters_are_typed_by_kind_and_stored_without_defaults(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue(JobKind.train, TrainParams(promote=True, epochs=3))
    assert queue.get(job_id).params == {"promote": True, "epochs": 3}
    claimed = queue.claim("w1")
    assert claimed is not None and claimed.kind is JobKind.train
    assert claimed.typed_params == TrainParams(promote=True, epochs=3, force=False)
    assert queue.get(queue.enqueue("scrape")).params == {}


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("dance", {}, "unknown job kind 'dance'; one of scrape, import_folder, train, promote"),
        ("scrape", {"charcter": "Rem"}, "bad parameters for a scrape job: charcter: Extra inputs"),
        ("train", {"epochs": 0}, "bad parameters for a train job: epochs: Input should be greater"),
        ("import_folder", {}, "bad parameters for a import_folder job: path: Field required"),
        ("promote", ScrapeParams(), "promote jobs take PromoteParams, not ScrapeParams"),
    ],
)
def test_a_wrong_kind_or_parameter_is_refused_in_one_line(engine: Engine, kind, params, message) -> None:
    with pytest.raises(CatalogError) as info:
        JobQueue(engine).enqueue(kind, params)
    assert str(info.value).startswith(message) and "\n" not in str(info.value)
    with session_scope(engine) as session:
        assert session.scalar(select(func.count()).select_from(Job)) == 0


def test_failed_job_keeps_its_error_and_can_be_retried(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("train")
    queue.claim("w1")
    assert queue.fail(job_id, "w1", ValueError("no character named 'Ghost'"))
    job = queue.get(job_id)
    assert job.status == JobStatus.failed and "no character named 'Ghost'" in job.error
    assert queue.retry(job_id)
    again = queue.claim("w2")
    assert again is not None and again.id == job_id and again.attempts == 2


def test_a_worker_that_lost_its_job_cannot_finish_it(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("scrape")
    queue.claim("w1")
    requeued = queue.requeue_stale(timedelta(seconds=30), now=utcnow() + timedelta(minutes=5))
    assert requeued == [job_id]
    assert queue.get(job_id).status == JobStatus.queued
    assert queue.claim("w2").id == job_id
    assert not queue.finish(job_id, "w1")
    assert not queue.heartbeat(job_id, "w1")
    assert queue.heartbeat(job_id, "w2")


def test_stale_job_out_of_attempts_fails(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("scrape", max_attempts=1)
    queue.claim("w1")
    assert queue.requeue_stale(timedelta(seconds=1), now=utcnow() + timedelta(minutes=1)) == []
    job = queue.get(job_id)
    assert job.status == JobStatus.failed and "stopped heartbeating" in job.error


def test_heartbeating_job_is_not_requeued(engine: Engine) -> None:
    queue = JobQueue(engine)
    job_id = queue.enqueue("scrape")
    queue.claim("w1")
    assert queue.heartbeat(job_id, "w1")
    assert queue.requeue_stale(timedelta(seconds=60)) == []


@pytest.mark.timeout(240)
def test_eight_concurrent_claimers_take_each_of_200_jobs_exactly_once(engine: Engine) -> None:
    queue = JobQueue(engine)
    ids = {queue.enqueue("scrape", {"limit": n + 1}) for n in range(200)}

    def drain(worker: str) -> list[int]:
        mine: list[int] = []
        own = JobQueue(engine)
        while (job := own.claim(worker)) is not None:
            mine.append(job.id)
            assert own.finish(job.id, worker)
        return mine

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(drain, [f"w{n}" for n in range(8)]))
    claimed = [job_id for worker_jobs in results for job_id in worker_jobs]
    assert len(claimed) == 200
    assert set(claimed) == ids
    assert sum(1 for worker_jobs in results if worker_jobs) >= 2, "claims were not concurrent"
    assert {j.status for j in queue.recent(limit=500)} == {JobStatus.succeeded}

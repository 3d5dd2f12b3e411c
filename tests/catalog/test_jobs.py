from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from catalog.jobs import JobQueue
from catalog.schema import JobStatus, utcnow


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
    ids = {queue.enqueue("scrape", {"n": n}) for n in range(200)}

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

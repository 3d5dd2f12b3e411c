"""The worker's scheduling and queue handling, on both databases, with real child processes."""

import inspect
import logging
import threading
from collections.abc import Callable

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from catalog.characters import NewCharacter, add_character, remove_character
from catalog.errors import CatalogError
from catalog.jobs import JobKind, JobQueue
from catalog.schedules import parse_schedule
from catalog.schema import JobStatus
from catalog.settings import Settings
from namae.job_handlers import HANDLERS
from namae.job_process import with_db_retry
from namae.worker import Worker
from tests.namae.waiting import wait_until


def _settings(data_dir, url: str, **worker) -> Settings:
    return Settings(
        data_dir=data_dir,
        database_url=url,
        worker={
            "rescrape_schedule": "off",
            "retrain_schedule": "off",
            "retrain_check_schedule": "off",
            **worker,
        },
        _env_file=None,
    )


def test_every_job_kind_has_a_handler_taking_its_parameters() -> None:
    assert set(HANDLERS) == set(JobKind)
    for kind, handler in HANDLERS.items():
        params = inspect.signature(handler, eval_str=True).parameters["params"]
        assert params.annotation is kind.params, kind


def test_database_calls_wait_for_the_database_then_give_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="media.retry")
    failures = [OperationalError("SELECT 1", {}, ConnectionRefusedError("server restarting"))] * 2

    def query() -> int:
        if failures:
            raise failures.pop()
        return 42

    assert with_db_retry(query, "job 7") == 42
    assert [r.getMessage().split(" after ")[0] for r in caplog.records] == [
        "retrying job 7 in 0.20 s",
        "retrying job 7 in 0.40 s",
    ]

    def failing(error: Exception) -> Callable[[], int]:
        def action() -> int:
            raise error

        return action

    with pytest.raises(OperationalError):
        down = OperationalError("SELECT 1", {}, ConnectionRefusedError("gone"))
        with_db_retry(failing(down), "job 8", patience_s=0.0)
    with pytest.raises(CatalogError):  # not the database: no retry
        with_db_retry(failing(CatalogError("no such character")), "job 9")


@pytest.mark.parametrize("value", ["interval:", "interval:0s", "interval:5x", "cron:61 * * * *", "every day"])
def test_a_schedule_that_does_not_parse_is_refused_with_its_value(value: str) -> None:
    with pytest.raises(CatalogError, match="NAMAE_WORKER__RESCRAPE_SCHEDULE") as info:
        parse_schedule(value, "NAMAE_WORKER__RESCRAPE_SCHEDULE")
    assert repr(value) in str(info.value)


def test_settings_refuse_a_bad_schedule_before_a_worker_starts(data_dir, sqlite_engine: Engine) -> None:
    with pytest.raises(ValidationError, match="interval:often"):
        _settings(data_dir, str(sqlite_engine.url), rescrape_schedule="interval:often")


def test_fast_schedule_fires_and_enqueues_one_scrape_job(data_dir, engine: Engine) -> None:
    url = engine.url.render_as_string(hide_password=False)
    worker = Worker(_settings(data_dir, url, rescrape_schedule="interval:1s"), engine=engine)
    worker.start_scheduler()
    fired: list[object] = []
    worker.scheduler.add_listener(fired.append, EVENT_JOB_EXECUTED)
    try:
        queue = JobQueue(engine)
        wait_until(lambda: len(fired) >= 3, 15, "three schedule firings")
        # It fired three times, but the same work is never queued twice while one is waiting.
        assert [j.kind for j in queue.recent()] == ["scrape"]
        assert queue.recent()[0].requested_by == "schedule"
    finally:
        worker.scheduler.shutdown(wait=False)


def test_queued_job_for_a_removed_character_fails_with_the_reason_and_worker_continues(
    data_dir, sqlite_engine: Engine
) -> None:
    add_character(sqlite_engine, NewCharacter(name="Rem"))
    remove_character(sqlite_engine, "Rem")
    queue = JobQueue(sqlite_engine)
    removed = queue.enqueue("scrape", {"character": "Rem"}, requested_by="mod")
    unknown = queue.enqueue("scrape", {"character": "Ghost"}, requested_by="mod")
    worker = Worker(_settings(data_dir, str(sqlite_engine.url)), engine=sqlite_engine)
    worker.serve(until_idle=True)
    assert worker.jobs_run == 2
    assert queue.get(removed).status == JobStatus.failed
    assert "'Rem' was removed" in queue.get(removed).error
    assert "no character named 'Ghost'" in queue.get(unknown).error


def test_a_moderator_queued_job_is_picked_up_within_a_second(data_dir, sqlite_engine: Engine) -> None:
    worker = Worker(_settings(data_dir, str(sqlite_engine.url), poll_interval_s=0.2), engine=sqlite_engine)
    thread = threading.Thread(target=worker.serve, daemon=True)
    thread.start()
    try:
        queue = JobQueue(sqlite_engine)
        job_id = queue.enqueue("scrape", {"character": "Nobody"}, requested_by="mod")
        wait_until(lambda: queue.get(job_id).started_at is not None, 5, "claim of the queued job")
        job = queue.get(job_id)
        assert (job.started_at - job.created_at).total_seconds() < 1.0
    finally:
        worker.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.mark.postgres
def test_workers_starting_together_on_a_fresh_database_all_get_the_schedule_table(postgres_url: str) -> None:
    """Eight workers create APScheduler's table at the same instant on an empty PostgreSQL
    database (the CREATE TABLE race made one of three workers exit in the scale-out test)."""
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from sqlalchemy import inspect as inspect_database

    from catalog.db import make_engine
    from namae.worker import create_job_table

    engines = [make_engine(postgres_url) for _ in range(8)]
    start = threading.Barrier(len(engines))
    errors: list[BaseException] = []

    def create(engine: Engine) -> None:
        store = SQLAlchemyJobStore(engine=engine, tablename="apscheduler_jobs")
        start.wait()
        try:
            create_job_table(store, engine)
        except BaseException as error:  # noqa: BLE001 - every failure is the finding
            errors.append(error)

    threads = [threading.Thread(target=create, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert not errors, errors
        assert "apscheduler_jobs" in inspect_database(engines[0]).get_table_names()
    finally:
        for engine in engines:
            engine.dispose()

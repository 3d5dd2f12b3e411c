"""The worker: APScheduler turns schedules into jobs in the catalog's queue, and a runner claims
queued jobs (scheduled ones and those moderators queued from Discord) and runs each in a child
process (`namae.job_process`, with the handlers of `namae.job_handlers`), so that a crash in
scraping or training cannot take the worker, or the bot beside it, down.

Every job goes through the queue, so `/jobs` and `namae jobs` show scheduled and requested work
alike, with live progress written back by the child.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import threading
from dataclasses import dataclass
from datetime import timedelta
from functools import cache
from typing import Any

from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError, ProgrammingError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_fixed

from catalog.db import make_engine, session_scope
from catalog.jobs import (
    ClaimedJob,
    JobKind,
    JobParams,
    JobQueue,
    ScrapeParams,
    TrainParams,
    stored_params,
)
from catalog.schedules import parse_schedule
from catalog.schema import Job, JobStatus, Label, ModelVersion
from catalog.settings import Settings
from namae.job_handlers import HANDLERS
from namae.job_process import DB_UNAVAILABLE, run_job_in_child, with_db_retry

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Schedule:
    job_id: str
    setting: str
    value: str
    target: str  # which function of this module the schedule calls


def schedules_from(settings: Settings) -> list[tuple[Schedule, Any]]:
    """Parse every schedule up front: a bad string stops the worker before it starts anything."""
    wanted = [
        Schedule(
            "rescrape", "worker.rescrape_schedule", settings.worker.rescrape_schedule, "scheduled_rescrape"
        ),
        Schedule("retrain", "worker.retrain_schedule", settings.worker.retrain_schedule, "scheduled_retrain"),
        Schedule(
            "retrain-check",
            "worker.retrain_check_schedule",
            settings.worker.retrain_check_schedule,
            "scheduled_retrain_check",
        ),
    ]
    parsed = []
    for schedule in wanted:
        trigger = parse_schedule(schedule.value, f"NAMAE_{schedule.setting.upper().replace('.', '__')}")
        if trigger is not None:
            parsed.append((schedule, trigger))
    return parsed


# --- what schedules do: they only ever enqueue ---------------------------------------------------


def _enqueue_once(engine: Engine, kind: JobKind, params: JobParams, requested_by: str) -> int | None:
    """Enqueue unless the same work is already waiting or running."""
    stored = stored_params(kind, params)
    with session_scope(engine) as session:
        pending = session.scalars(
            select(Job).where(Job.kind == kind, Job.status.in_([JobStatus.queued, JobStatus.running]))
        ).all()
    if any(job.params == stored for job in pending):
        return None
    return JobQueue(engine).enqueue(kind, params, requested_by=requested_by)


@cache
def _schedule_engine(database_url: str) -> Engine:
    """One engine (and connection pool) per catalog for the schedule callbacks, which APScheduler
    calls by name with the URL, not once per firing."""
    return make_engine(database_url)


def scheduled_rescrape(database_url: str) -> int | None:
    return _enqueue_once(_schedule_engine(database_url), JobKind.scrape, ScrapeParams(), "schedule")


def scheduled_retrain(database_url: str) -> int | None:
    return _enqueue_once(_schedule_engine(database_url), JobKind.train, TrainParams(promote=True), "schedule")


def scheduled_retrain_check(database_url: str, min_new_labels: int) -> int | None:
    engine = _schedule_engine(database_url)
    if new_labels_since_last_model(engine) < min_new_labels:
        return None
    return _enqueue_once(engine, JobKind.train, TrainParams(promote=True), "schedule: new labels")


def new_labels_since_last_model(engine: Engine) -> int:
    with session_scope(engine) as session:
        last = session.scalar(select(func.max(ModelVersion.created_at)))
        query = select(func.count()).select_from(Label)
        if last is not None:
            query = query.where(Label.created_at > last)
        return session.scalar(query) or 0


# --- the worker loop ------------------------------------------------------------------------------


def create_job_table(store: SQLAlchemyJobStore, engine: Engine) -> None:
    """APScheduler's table, made before its scheduler starts. Workers starting together on a fresh
    PostgreSQL race to create it: the loser's CREATE TABLE fails (a duplicate type or relation),
    and its next look finds the table made."""
    for attempt in Retrying(
        retry=retry_if_exception_type((IntegrityError, ProgrammingError)),
        stop=stop_after_attempt(5),
        wait=wait_fixed(0.05),
        reraise=True,
    ):
        with attempt:
            store.jobs_t.create(engine, checkfirst=True)


class Worker:
    def __init__(self, settings: Settings, *, name: str | None = None, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or make_engine(settings.resolved_database_url)
        self.queue = JobQueue(self.engine)
        # A stable name per data directory and host: after a restart the worker recognises the
        # jobs it held when it was killed and requeues them at once.
        self.name = name or f"{socket.gethostname()}:{settings.data_dir.resolve()}"
        self.stop_event = threading.Event()
        self.wake = threading.Event()
        self.schedules = schedules_from(settings)
        self.scheduler: BackgroundScheduler | None = None
        self.jobs_run = 0

    def start_scheduler(self) -> None:
        url = self.settings.resolved_database_url
        store = SQLAlchemyJobStore(engine=self.engine, tablename="apscheduler_jobs")
        create_job_table(store, self.engine)
        scheduler = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")
        for schedule, trigger in self.schedules:
            kwargs: dict[str, Any] = {"database_url": url}
            if schedule.target == "scheduled_retrain_check":
                kwargs["min_new_labels"] = self.settings.worker.retrain_min_new_labels
            scheduler.add_job(
                f"namae.worker:{schedule.target}",
                trigger=trigger,
                id=schedule.job_id,
                kwargs=kwargs,
                replace_existing=True,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=self.settings.worker.misfire_grace_s,
            )
        # Schedules removed from configuration must not keep firing from the persistent store.
        scheduler.start(paused=True)
        wanted = {schedule.job_id for schedule, _ in self.schedules}
        for job in scheduler.get_jobs():
            if job.id not in wanted:
                job.remove()
        scheduler.add_listener(lambda _event: self.wake.set())
        scheduler.resume()
        self.scheduler = scheduler
        log.info(
            "scheduler started with %s", ", ".join(s.job_id for s, _ in self.schedules) or "no schedules"
        )

    def recover(self) -> list[int]:
        """Jobs this worker held when it died go back to the queue; so do other workers' stale ones."""
        with session_scope(self.engine) as session:
            mine = session.scalars(
                select(Job).where(Job.status == JobStatus.running, Job.claimed_by == self.name)
            ).all()
            for job in mine:
                job.status = JobStatus.queued
                job.claimed_by = None
                job.message = "requeued after the worker restarted"
            recovered = [job.id for job in mine]
        stale = self.queue.requeue_stale(timedelta(seconds=self.settings.worker.stale_after_s))
        if recovered or stale:
            log.warning("requeued jobs %s", recovered + stale)
        return recovered + stale

    def run_one(self) -> bool:
        """Claim and run one job to its end. False when the queue was empty."""
        job = self.queue.claim(self.name, tuple(HANDLERS))
        if job is None:
            return False
        log.info("running job %s (%s) %s", job.id, job.kind, job.params)
        context = multiprocessing.get_context("spawn")
        child = context.Process(
            target=run_job_in_child,
            args=(self.settings, job, self.name, os.getpid()),
            name=f"namae-job-{job.id}",
            daemon=True,
        )
        child.start()
        while child.is_alive():
            child.join(self.settings.worker.heartbeat_s)
            if child.is_alive() and self._heartbeat_lost(job.id):
                log.warning("job %s was taken from this worker; stopping its process", job.id)
                child.kill()
                child.join()
            if self.stop_event.is_set() and child.is_alive():
                child.join()  # finish the job in hand before stopping
        with_db_retry(lambda: self._settle(job, child.exitcode), f"job {job.id}")
        self.jobs_run += 1
        return True

    def _heartbeat_lost(self, job_id: int) -> bool:
        try:
            return not self.queue.heartbeat(job_id, self.name) and self._lost(job_id)
        except DB_UNAVAILABLE:
            log.warning("job %s: heartbeat missed, the database is unavailable", job_id)
            return False

    def _settle(self, job: ClaimedJob, exitcode: int | None) -> None:
        """A job whose process died without recording an outcome gets another attempt, or fails
        with the exit code once it has used its attempts."""
        stored = self.queue.get(job.id)
        if stored is None or stored.status != JobStatus.running or stored.claimed_by != self.name:
            return
        message = f"job process exited with code {exitcode}"
        if stored.attempts < stored.max_attempts:
            self.queue.release(job.id, self.name, f"{message}; queued again")
        else:
            self.queue.fail(job.id, self.name, message)

    def _lost(self, job_id: int) -> bool:
        """A failed heartbeat means the job was requeued to someone else, unless our own child
        just finished it (succeeded or failed) and is on its way out."""
        job = self.queue.get(job_id)
        return job is None or job.status not in (JobStatus.succeeded, JobStatus.failed)

    def serve(self, *, until_idle: bool = False, max_jobs: int | None = None) -> None:
        self.recover()
        if not until_idle:
            self.start_scheduler()
        try:
            while not self.stop_event.is_set():
                try:
                    ran = self.run_one()
                except DB_UNAVAILABLE as exc:
                    log.warning("database unavailable, waiting: %s", str(exc.orig or exc).splitlines()[0])
                    self.stop_event.wait(self.settings.worker.poll_interval_s * 5)
                    continue
                if max_jobs is not None and self.jobs_run >= max_jobs:
                    break
                if not ran:
                    if until_idle:
                        break
                    with contextlib.suppress(*DB_UNAVAILABLE):
                        self.queue.requeue_stale(timedelta(seconds=self.settings.worker.stale_after_s))
                    self.wake.wait(self.settings.worker.poll_interval_s)
                    self.wake.clear()
        finally:
            if self.scheduler is not None:
                self.scheduler.shutdown(wait=False)

    def stop(self) -> None:
        self.stop_event.set()
        self.wake.set()

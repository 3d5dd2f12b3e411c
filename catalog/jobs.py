"""The job queue in the catalog: the kinds of job and their typed parameters (defined here once),
enqueue, claim, heartbeat, progress, finish, fail, retry, requeue.

Claiming is exactly-once on both databases: PostgreSQL uses `FOR UPDATE SKIP LOCKED`; SQLite
serializes writers, and the claim is a guarded UPDATE (`... AND status = 'queued'`) whose row
count says whether this claimer won.
"""

from __future__ import annotations

import enum
import traceback
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from catalog.db import is_sqlite, session_scope
from catalog.errors import CatalogError
from catalog.schema import Job, JobStatus, utcnow


class JobParams(BaseModel):
    """A job's parameters, stored as JSON in `Job.params` (without the defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ScrapeParams(JobParams):
    character: str | None = Field(None, description="one character (by name or alias); none: all")
    source: str | None = Field(None, description="one kind of source (subreddit, title_search, ...)")
    limit: int | None = Field(None, ge=1, description="posts per source")
    retry_rejected: bool = Field(False, description="try every earlier rejection that is not final again")


class ImportFolderParams(JobParams):
    path: str = Field(description="a folder with a folder of images per character")


class TrainParams(JobParams):
    backbone: str | None = None
    epochs: int | None = Field(None, ge=1)
    image_size: int | None = Field(None, ge=32)
    promote: bool = Field(False, description="promote the new version through the gate")
    force: bool = Field(False, description="promote even when it loses to the active version")


class PromoteParams(JobParams):
    version: str | None = Field(None, description="default: the newest candidate")
    force: bool = False


class MemoryParams(JobParams):
    """Embed the labelled faces the active version's memory lacks (no parameters)."""


class JobKind(enum.StrEnum):
    """Every kind of job the queue holds; `params` is the model its parameters must fit."""

    scrape = "scrape"
    import_folder = "import_folder"
    train = "train"
    promote = "promote"
    memory = "memory"

    @property
    def params(self) -> type[JobParams]:
        return _PARAMS[self]

    @classmethod
    def parse(cls, kind: str) -> JobKind:
        try:
            return cls(kind)
        except ValueError:
            raise CatalogError(f"unknown job kind {kind!r}; one of {', '.join(cls)}") from None


_PARAMS: dict[JobKind, type[JobParams]] = {
    JobKind.scrape: ScrapeParams,
    JobKind.import_folder: ImportFolderParams,
    JobKind.train: TrainParams,
    JobKind.promote: PromoteParams,
    JobKind.memory: MemoryParams,
}


def job_params(kind: JobKind | str, params: JobParams | dict[str, Any] | None) -> JobParams:
    """`params` checked against `kind`'s model; a bad one is a one-line `CatalogError`."""
    model = JobKind.parse(kind).params
    if isinstance(params, model):
        return params
    if isinstance(params, JobParams):
        raise CatalogError(f"{kind} jobs take {model.__name__}, not {type(params).__name__}")
    try:
        return model.model_validate(params or {})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'params'}: {e['msg']}" for e in exc.errors())
        raise CatalogError(f"bad parameters for a {kind} job: {problems}") from None


def stored_params(kind: JobKind | str, params: JobParams | dict[str, Any] | None) -> dict[str, Any]:
    """What `Job.params` holds for these parameters: checked, defaults left out."""
    return job_params(kind, params).model_dump(exclude_defaults=True)


def queue_in(session: Session, kind: JobKind, *, requested_by: str, priority: int = 100) -> bool:
    """Queue a job of `kind` without parameters in the caller's transaction, unless one is queued
    already (it will do the same work); True when one was added."""
    waiting = select(Job.id).where(Job.kind == kind.value, Job.status == JobStatus.queued).limit(1)
    if session.scalar(waiting) is not None:
        return False
    session.add(
        Job(kind=kind.value, params={}, requested_by=requested_by, priority=priority, status=JobStatus.queued)
    )
    return True


@dataclass(frozen=True)
class ClaimedJob:
    id: int
    kind: JobKind
    params: dict[str, Any]  # as stored; `typed_params` checks them against the kind
    attempts: int

    @property
    def typed_params(self) -> JobParams:
        return job_params(self.kind, self.params)


class JobQueue:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def enqueue(
        self,
        kind: JobKind | str,
        params: JobParams | dict[str, Any] | None = None,
        *,
        requested_by: str | None = None,
        priority: int = 100,
        max_attempts: int = 3,
    ) -> int:
        """Queue a job; its kind and parameters are checked first (`CatalogError` when wrong)."""
        stored = stored_params(kind, params)
        with session_scope(self.engine) as session:
            job = Job(
                kind=JobKind.parse(kind).value,
                params=stored,
                requested_by=requested_by,
                priority=priority,
                max_attempts=max_attempts,
                status=JobStatus.queued,
            )
            session.add(job)
            session.flush()
            return job.id

    def claim(self, worker: str, kinds: tuple[str, ...] | None = None) -> ClaimedJob | None:
        """Take the next queued job, or None. Concurrent claimers never get the same job."""
        if is_sqlite(self.engine):
            return self._claim_sqlite(worker, kinds)
        return self._claim_postgres(worker, kinds)

    def _claim_query(self, kinds: tuple[str, ...] | None):
        query = select(Job.id).where(Job.status == JobStatus.queued).order_by(Job.priority, Job.id)
        if kinds:
            query = query.where(Job.kind.in_(kinds))
        return query

    def _claim_postgres(self, worker: str, kinds: tuple[str, ...] | None) -> ClaimedJob | None:
        with session_scope(self.engine) as session:
            job_id = session.scalar(self._claim_query(kinds).limit(1).with_for_update(skip_locked=True))
            if job_id is None:
                return None
            job = session.get(Job, job_id)
            assert job is not None
            self._mark_claimed(job, worker)
            return ClaimedJob(job.id, JobKind(job.kind), dict(job.params), job.attempts)

    def _claim_sqlite(self, worker: str, kinds: tuple[str, ...] | None) -> ClaimedJob | None:
        while True:
            with session_scope(self.engine) as session:
                job_id = session.scalar(self._claim_query(kinds).limit(1))
                if job_id is None:
                    return None
                now = utcnow()
                won = session.execute(
                    update(Job)
                    .where(Job.id == job_id, Job.status == JobStatus.queued)
                    .values(
                        status=JobStatus.running,
                        claimed_by=worker,
                        attempts=Job.attempts + 1,
                        started_at=now,
                        heartbeat_at=now,
                        error=None,
                    )
                ).rowcount
                if won:
                    job = session.get(Job, job_id)
                    assert job is not None
                    session.refresh(job)
                    return ClaimedJob(job.id, JobKind(job.kind), dict(job.params), job.attempts)

    @staticmethod
    def _mark_claimed(job: Job, worker: str) -> None:
        now = utcnow()
        job.status = JobStatus.running
        job.claimed_by = worker
        job.attempts += 1
        job.started_at = now
        job.heartbeat_at = now
        job.error = None

    def _update_running(self, job_id: int, worker: str, **values: Any) -> bool:
        """Update a job this worker still holds; False if it was requeued to someone else."""
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.claimed_by == worker, Job.status == JobStatus.running)
                .values(**values)
            )
            return bool(result.rowcount)

    def heartbeat(self, job_id: int, worker: str) -> bool:
        return self._update_running(job_id, worker, heartbeat_at=utcnow())

    def progress(self, job_id: int, worker: str, fraction: float, message: str | None = None) -> bool:
        values: dict[str, Any] = {"progress": max(0.0, min(1.0, fraction)), "heartbeat_at": utcnow()}
        if message is not None:
            values["message"] = message
        return self._update_running(job_id, worker, **values)

    def finish(self, job_id: int, worker: str, result: dict[str, Any] | None = None) -> bool:
        return self._update_running(
            job_id,
            worker,
            status=JobStatus.succeeded,
            progress=1.0,
            result=result,
            finished_at=utcnow(),
        )

    def fail(self, job_id: int, worker: str, error: BaseException | str) -> bool:
        text = error if isinstance(error, str) else _describe(error)
        return self._update_running(job_id, worker, status=JobStatus.failed, error=text, finished_at=utcnow())

    def release(self, job_id: int, worker: str, message: str) -> bool:
        """Give a running job back to the queue for another attempt (its process died)."""
        return self._update_running(job_id, worker, status=JobStatus.queued, claimed_by=None, message=message)

    def retry(self, job_id: int) -> bool:
        """Put a failed or cancelled job back in the queue, keeping its last error for reference."""
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status.in_([JobStatus.failed, JobStatus.cancelled]))
                .values(
                    status=JobStatus.queued,
                    claimed_by=None,
                    progress=0.0,
                    finished_at=None,
                    max_attempts=Job.attempts + 1,
                )
            )
            return bool(result.rowcount)

    def cancel(self, job_id: int) -> bool:
        with session_scope(self.engine) as session:
            result = session.execute(
                update(Job)
                .where(Job.id == job_id, Job.status == JobStatus.queued)
                .values(status=JobStatus.cancelled, finished_at=utcnow())
            )
            return bool(result.rowcount)

    def requeue_stale(self, stale_after: timedelta, *, now: datetime | None = None) -> list[int]:
        """Jobs whose claimer stopped heartbeating go back to the queue (or fail, when they have
        used up their attempts). Returns the ids that were requeued."""
        cutoff = (now or utcnow()) - stale_after
        with session_scope(self.engine) as session:
            stale = list(
                session.scalars(
                    select(Job)
                    .where(Job.status == JobStatus.running, Job.heartbeat_at < cutoff)
                    .with_for_update(skip_locked=True)
                )
            )
            requeued: list[int] = []
            for job in stale:
                job.claimed_by = None
                if job.attempts >= job.max_attempts:
                    job.status = JobStatus.failed
                    job.error = f"worker stopped heartbeating; gave up after {job.attempts} attempts"
                    job.finished_at = utcnow()
                else:
                    job.status = JobStatus.queued
                    job.message = "requeued: its worker stopped heartbeating"
                    requeued.append(job.id)
            return requeued

    def get(self, job_id: int) -> Job | None:
        with session_scope(self.engine) as session:
            return session.get(Job, job_id)

    def recent(self, *, statuses: list[JobStatus] | None = None, limit: int = 50) -> list[Job]:
        with session_scope(self.engine) as session:
            query = select(Job).order_by(Job.id.desc()).limit(limit)
            if statuses:
                query = query.where(Job.status.in_(statuses))
            return list(session.scalars(query))


def _describe(error: BaseException) -> str:
    lines = traceback.format_exception_only(type(error), error)
    return "".join(lines).strip()

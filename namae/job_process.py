"""Running one claimed job in a child process of the worker: the child dies with its parent, writes
its progress back to the queue, stops when the job was requeued to another worker, and records the
outcome, waiting out a database that is briefly unavailable (`with_db_retry`, used by the worker
loop too).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
from collections.abc import Callable
from functools import partial
from typing import Any

from sqlalchemy.exc import InterfaceError, OperationalError

from catalog.db import make_engine
from catalog.errors import CatalogError
from catalog.jobs import ClaimedJob, JobQueue
from catalog.settings import Settings
from media.retry import RetryPolicy
from namae.job_handlers import HANDLERS

# The child logs as part of the worker: operators read and filter its lines under that name.
log = logging.getLogger("namae.worker")

# What a database restart or a dropped connection looks like; the work waits for it to come back.
DB_UNAVAILABLE = (OperationalError, InterfaceError)


def with_db_retry(action: Callable[[], Any], what: str, *, patience_s: float = 120.0) -> Any:
    """Run `action`, retrying with backoff (0.2 s doubling to 5 s, `media.retry`'s policy) while the
    database is unavailable, for at most `patience_s`, so that a restarted PostgreSQL costs a
    pause, not a job."""
    policy = RetryPolicy(tries=None, base=0.2, cap=5.0, jitter=False, patience=patience_s)
    return policy.synchronous(what, retry_on=lambda error: isinstance(error, DB_UNAVAILABLE))(action)


def _die_with_parent() -> None:
    """Linux: the kernel kills this child when the worker dies, even by SIGKILL, so that a killed
    worker leaves no orphan still writing to the catalog."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        pr_set_pdeathsig = 1
        libc.prctl(pr_set_pdeathsig, signal.SIGKILL)


def run_job_in_child(settings: Settings, job: ClaimedJob, worker: str, parent_pid: int) -> None:
    """Entry point of the child process. Settings travel pickled, not as JSON: a JSON dump masks
    secrets, and the child needs the real Reddit credentials."""
    _die_with_parent()
    if os.getppid() != parent_pid:
        os._exit(1)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    engine = make_engine(settings.resolved_database_url)
    queue = JobQueue(engine)

    def progress(fraction: float, message: str) -> None:
        try:
            still_ours = queue.progress(job.id, worker, fraction, message)
        except DB_UNAVAILABLE:
            log.warning("job %s: progress not recorded, the database is unavailable", job.id)
            return  # progress is informative; the work goes on
        if not still_ours:
            # The job was requeued to another worker: stop instead of doing the work twice.
            raise CatalogError(f"job {job.id} is no longer ours")

    try:
        result = HANDLERS[job.kind](settings, engine, job.typed_params, progress)
    except Exception as exc:
        log.exception("job %s (%s) failed", job.id, job.kind)
        with_db_retry(partial(queue.fail, job.id, worker, exc), f"job {job.id}")
        return
    with_db_retry(lambda: queue.finish(job.id, worker, result), f"job {job.id}")

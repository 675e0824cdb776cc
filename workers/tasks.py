"""The task adapter (a job id in, the core use case run, nothing else) and worker signals."""

from __future__ import annotations

import logging
from functools import lru_cache

from celery import Celery, Task
from celery.exceptions import SoftTimeLimitExceeded
from celery.signals import worker_process_init, worker_shutting_down

from core.bootstrap import RUN_JOB, Platform, bootstrap
from core.jobs.runner import run_job
from core.settings import Settings
from core.store import repos
from core.store.db import transaction

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def platform(settings: Settings | None = None) -> Platform:
    """The worker process's platform, built once (after the fork, on first use)."""
    return bootstrap(settings)


def register(app: Celery) -> None:
    app.task(name=RUN_JOB, bind=True, max_retries=None)(run)


def run(self: Task, job_id: str) -> str:
    rt = platform()
    outcome = run_job(
        job_id,
        factory=rt.factory,
        settings=rt.settings,
        worker=self.request.hostname,
        enqueue=rt.enqueue,
        time_limit_errors=(SoftTimeLimitExceeded,),
    )
    if outcome == "busy":  # another worker holds a fresh lease: look again once it may lapse
        raise self.retry(countdown=rt.settings.lease_seconds)
    if outcome == "requeue":  # handed back by a worker shutting down: any worker may resume it
        queue = (self.request.delivery_info or {}).get("routing_key") or "cpu"
        self.app.send_task(RUN_JOB, args=[job_id], queue=queue)
    return outcome


@worker_shutting_down.connect
def hand_back_running_jobs(sender: str, **_: object) -> None:
    """On SIGTERM (a deploy), ask this worker's running jobs to checkpoint and hand back,
    instead of holding their messages until the job ends."""
    with transaction(platform().factory) as session:
        handed = repos.request_handoff(session, worker=sender)
    if handed:
        log.warning("shutting down: handing back %s", ", ".join(handed))


@worker_process_init.connect
def fresh_connections(**_: object) -> None:
    """A forked pool process opens its own database connections, never its parent's."""
    platform().db.dispose(close=False)

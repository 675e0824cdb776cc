"""Run one job through its lifecycle: claim a lease, run the handler, record the outcome.

Safe to call any number of times for the same job (redelivered or duplicated messages):
- a finished job returns at once, and a job cancelled while queued never starts;
- a job another worker holds (fresh heartbeat) is left alone: the caller retries later;
- each claim counts as an attempt; past ``job_max_attempts`` the job fails as worker_lost;
- the claim takes a lease token that fences every later write, and a thread renews the
  heartbeat; a worker whose lease was taken back stops and writes nothing more.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from core import metrics
from core.errors import CoreError
from core.jobs import lifecycle
from core.jobs.context import JobContext, Stop
from core.jobs.ports import Enqueue
from core.jobs.registry import kind_of
from core.jobs.service import enqueue_released
from core.settings import Settings
from core.store import repos
from core.store.db import transaction
from core.store.tables import JobRow, as_utc, utcnow

log = logging.getLogger(__name__)

Outcome = Literal["succeeded", "failed", "cancelled", "busy", "requeue", "lease_lost", "waiting"]


@dataclass(frozen=True)
class Claim:
    type: str
    spec: dict
    token: str


def run_job(
    job_id: str,
    *,
    factory: sessionmaker[Session],
    settings: Settings,
    worker: str,
    enqueue: Enqueue,
    time_limit_errors: tuple[type[BaseException], ...] = (),
) -> Outcome:
    """Run ``job_id``; returns its final state, or ``busy`` (held elsewhere: retry later),
    ``requeue`` (handed back: enqueue it again), ``waiting`` (it waits for other jobs, whose
    end enqueues it) or ``lease_lost``. A final state enqueues the jobs waiting for it."""
    claim = _claim(job_id, factory, settings, worker, enqueue)
    if isinstance(claim, str):
        return claim  # type: ignore[return-value]
    ctx = JobContext(job_id, factory, settings, settings.jobs_dir / job_id, claim.token, enqueue)
    ctx.artifacts.mkdir(parents=True, exist_ok=True)
    beat = _Heartbeat(ctx, settings.heartbeat_seconds)
    beat.start()
    started = time.monotonic()
    outcome = "error"  # what the metrics say if the run raised
    try:
        outcome = _run(ctx, claim, time_limit_errors)
        return outcome
    finally:
        beat.stop()
        metrics.JOB_SECONDS.labels(claim.type, outcome).observe(time.monotonic() - started)


def _run(ctx: JobContext, claim: Claim, time_limit_errors: tuple) -> Outcome:
    kind = kind_of(claim.type)
    spec = kind.Spec.model_validate(claim.spec)
    try:
        result = kind.run(ctx, spec)
    except time_limit_errors:
        return _finish(ctx, "failed", code="time_limit", message="the job ran past its limit")
    except CoreError as exc:
        if ctx.should_cancel() or isinstance(exc, Stop):
            return _stopped(ctx)
        return _finish(ctx, "failed", code=exc.code, message=exc.message)
    except Exception:  # the details (and any server path in them) stay in the worker log
        error_id = uuid.uuid4().hex[:12]
        log.exception("job %s failed (error %s)", ctx.job_id, error_id)
        message = f"the job failed unexpectedly (error {error_id} in the worker log)"
        return _finish(ctx, "failed", code="internal_error", message=message)
    return _finish(ctx, "succeeded", result=_with_encodes(ctx, result))


def _with_encodes(ctx: JobContext, result: dict) -> dict:
    """``result`` with what the job encoded (``encodes``: corpus encodes, texts encoded and
    served from the cache), also recorded as the job's metrics at step 0."""
    counts = ctx.encodes.as_metrics()
    if not any(counts.values()):
        return result
    ctx.metrics(0, counts)
    return {**result, "encodes": counts}


def _stopped(ctx: JobContext) -> Outcome:
    if ctx.stop_reason == "lost":
        log.warning("job %s: lease lost, stopping without writing", ctx.job_id)
        return "lease_lost"
    if ctx.stop_reason == "handoff":
        with transaction(ctx.factory) as session:
            job = repos.lock_job(session, job_id=ctx.job_id)
            if job.lease_token != ctx.lease_token:
                return "lease_lost"
            job.status, job.lease_token, job.handoff_requested = "queued", None, False
            job.attempts -= 1  # a hand-off is not a failed attempt
            job.enqueued_at = utcnow()
            repos.add_event(
                session,
                job_id=ctx.job_id,
                kind="state",
                message="queued",
                data={"reason": "handed back: its worker is shutting down"},
            )
        return "requeue"
    return _finish(ctx, "cancelled")


def _claim(
    job_id: str, factory: sessionmaker[Session], settings: Settings, worker: str, enqueue: Enqueue
) -> Claim | Outcome:
    ready: list[JobRow] = []
    with transaction(factory) as session:
        claim = _take(session, job_id, settings, worker, ready)
    enqueue_released(ready, enqueue)
    return claim


def _take(
    session: Session, job_id: str, settings: Settings, worker: str, ready: list[JobRow]
) -> Claim | Outcome:
    job = repos.lock_job(session, job_id=job_id)
    if job.status in repos.TERMINAL:
        return job.status  # type: ignore[return-value]
    if job.cancel_requested:
        ready += lifecycle.end(session, job, "cancelled")
        return "cancelled"
    if job.status == "queued" and lifecycle.is_waiting(session, job):
        return "waiting"  # a stray delivery: the end of what it waits for enqueues it
    if job.status == "running" and not is_stale(job, settings.lease_seconds):
        return "busy"
    if job.attempts >= settings.job_max_attempts:
        message = f"gave up after {job.attempts} attempts whose worker was lost"
        ready += lifecycle.end(session, job, "failed", code="worker_lost", message=message)
        return "failed"
    job.attempts += 1
    token = uuid.uuid4().hex
    job.status, job.worker, job.lease_token = "running", worker, token
    job.heartbeat_at, job.handoff_requested = utcnow(), False
    job.started_at = job.started_at or utcnow()
    repos.add_event(
        session,
        job_id=job_id,
        kind="state",
        message="running",
        data={"attempt": job.attempts, "worker": worker},
    )
    return Claim(job.type, dict(job.spec), token)


def is_stale(job: JobRow, lease_seconds: float) -> bool:
    if job.heartbeat_at is None:
        return True
    return utcnow() - as_utc(job.heartbeat_at) > timedelta(seconds=lease_seconds)


def _finish(
    ctx: JobContext,
    status: str,
    *,
    code: str | None = None,
    message: str | None = None,
    result: dict | None = None,
) -> Outcome:
    with transaction(ctx.factory) as session:
        job = repos.lock_job(session, job_id=ctx.job_id)
        if job.lease_token != ctx.lease_token:
            log.warning("job %s: lease lost before recording %s", ctx.job_id, status)
            return "lease_lost"
        ready = lifecycle.end(session, job, status, code=code, message=message, result=result)
    enqueue_released(ready, ctx.enqueue)
    return status  # type: ignore[return-value]


class _Heartbeat:
    """Renews the job's heartbeat while it runs; notices when the lease was taken back."""

    def __init__(self, ctx: JobContext, every: float) -> None:
        self.ctx, self.every = ctx, every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="heartbeat")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._done.wait(self.every):
            try:
                with transaction(self.ctx.factory) as session:
                    held = repos.update_leased(
                        session,
                        job_id=self.ctx.job_id,
                        token=self.ctx.lease_token,
                        heartbeat_at=utcnow(),
                    )
            except Exception:  # a database blip: try again at the next beat
                log.warning("heartbeat of job %s failed", self.ctx.job_id, exc_info=True)
                continue
            if not held:
                self.ctx.stop_reason = "lost"
                return

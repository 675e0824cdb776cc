"""Run one job through its lifecycle: claim, run the handler, record the outcome.

Safe to call twice for the same job (a redelivered message): a finished job returns at once,
a job that was cancelled while queued never starts, and each delivery counts as an attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from core.errors import Cancelled, CoreError
from core.jobs.context import JobContext
from core.jobs.handlers import HANDLERS
from core.jobs.specs import SPEC_OF
from core.settings import Settings
from core.store import repos
from core.store.db import transaction
from core.store.tables import utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Claim:
    type: str
    spec: dict


def run_job(
    job_id: str,
    *,
    factory: sessionmaker[Session],
    settings: Settings,
    worker: str,
    time_limit_errors: tuple[type[BaseException], ...] = (),
) -> str:
    """Run ``job_id`` to a final state and return that state."""
    claim = _claim(job_id, factory, settings, worker)
    if claim is None:
        with factory() as session:
            return repos.get_or_404(session, repos.JobRow, job_id, "job").status
    ctx = JobContext(job_id, factory, settings, settings.jobs_dir / job_id)
    ctx.artifacts.mkdir(parents=True, exist_ok=True)
    try:
        result = HANDLERS[claim.type](ctx, SPEC_OF[claim.type].model_validate(claim.spec))
    except Cancelled:
        return _finish(factory, job_id, "cancelled")
    except time_limit_errors:
        return _finish(
            factory, job_id, "failed", code="time_limit", message="the job ran past its time limit"
        )
    except CoreError as exc:
        return _finish(factory, job_id, "failed", code=exc.code, message=exc.message)
    except Exception as exc:
        log.exception("job %s failed", job_id)
        return _finish(
            factory, job_id, "failed", code="internal_error", message=f"{type(exc).__name__}: {exc}"
        )
    return _finish(factory, job_id, "succeeded", result=result)


def _claim(
    job_id: str, factory: sessionmaker[Session], settings: Settings, worker: str
) -> Claim | None:
    with transaction(factory) as session:
        job = repos.lock_job(session, job_id=job_id)
        if job.status in repos.TERMINAL:
            return None
        if job.cancel_requested:
            _set_final(session, job_id, "cancelled")
            return None
        job.attempts += 1
        if job.attempts > settings.job_max_attempts:
            _set_final(
                session,
                job_id,
                "failed",
                code="worker_lost",
                message=f"gave up after {settings.job_max_attempts} deliveries",
            )
            return None
        job.status, job.worker, job.heartbeat_at = "running", worker, utcnow()
        job.started_at = job.started_at or utcnow()
        repos.add_event(
            session,
            job_id=job_id,
            kind="state",
            message="running",
            data={"attempt": job.attempts, "worker": worker},
        )
        return Claim(job.type, dict(job.spec))


def _finish(
    factory: sessionmaker[Session],
    job_id: str,
    status: str,
    *,
    code: str | None = None,
    message: str | None = None,
    result: dict | None = None,
) -> str:
    with transaction(factory) as session:
        _set_final(session, job_id, status, code=code, message=message, result=result)
    return status


def _set_final(
    session: Session,
    job_id: str,
    status: str,
    *,
    code: str | None = None,
    message: str | None = None,
    result: dict | None = None,
) -> None:
    values: dict = {
        "status": status,
        "finished_at": utcnow(),
        "error_code": code,
        "error_message": message,
        "eta_seconds": None,
    }
    if status == "succeeded":
        values.update(progress=1.0, result=result or {})
    repos.update_job(session, job_id=job_id, **values)
    repos.add_event(
        session,
        job_id=job_id,
        kind="state",
        message=status,
        level="error" if status == "failed" else "info",
        data={"code": code, "message": message} if code else {},
    )

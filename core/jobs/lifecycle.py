"""A job's final states and the jobs that wait for it.

A job may depend on others (``job_dependencies``): it stays ``queued``, handed to no broker
and held by no worker, until every one of them has finished. When a job finishes,
:func:`release_dependents` enqueues the dependents that are now free to run, and fails (or
cancels) those that needed it to succeed, with ``dependency_failed`` (``_cancelled``), and so
on down the chain. No worker ever waits for another job.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.store import repos
from core.store.tables import JobRow, utcnow


def set_final(
    session: Session,
    job: JobRow,
    status: str,
    *,
    code: str | None = None,
    message: str | None = None,
    result: dict | None = None,
) -> None:
    """Move ``job`` (locked) to a final state and record the event."""
    job.status, job.finished_at, job.eta_seconds, job.lease_token = status, utcnow(), None, None
    job.error_code, job.error_message = code, message
    if status == "succeeded":
        job.progress, job.result = 1.0, result or {}
    repos.add_event(
        session,
        job_id=job.id,
        kind="state",
        message=status,
        level="error" if status == "failed" else "info",
        data={"code": code, "message": message} if code else {},
    )


def end(session: Session, job: JobRow, status: str, **outcome: Any) -> list[JobRow]:
    """End ``job`` (locked) as ``set_final`` does; returns the jobs that waited for it and
    may run now (to enqueue after the commit)."""
    set_final(session, job, status, **outcome)
    return release_dependents(session, job)


def depend(session: Session, *, job: JobRow, on: str, required: bool) -> None:
    """``job`` (just added, still queued) waits for job ``on``; with ``required`` it runs
    only if ``on`` succeeds. It is not handed to the broker until then."""
    repos.add_dependency(session, job_id=job.id, depends_on=on, required=required)
    job.enqueued_at = None


def is_waiting(session: Session, job: JobRow) -> bool:
    return repos.unfinished_dependencies(session, job_id=job.id) > 0


def release_dependents(session: Session, finished: JobRow) -> list[JobRow]:
    """After ``finished`` reached its final state: the dependents to enqueue now."""
    ready: list[JobRow] = []
    for link in repos.dependencies_on(session, job_id=finished.id):
        dependent = repos.lock_job(session, job_id=link.job_id)
        if dependent.status != "queued":
            continue
        if link.required and finished.status != "succeeded":
            status = "cancelled" if finished.status == "cancelled" else "failed"
            ready += end(
                session,
                dependent,
                status,
                code=f"dependency_{finished.status}",
                message=f"job '{finished.id}', which this job needs, {finished.status}",
            )
        elif not is_waiting(session, dependent):
            dependent.enqueued_at = utcnow()
            ready.append(dependent)
    return ready

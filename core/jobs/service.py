"""Submit and cancel jobs. Submission checks everything first, commits, then enqueues."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.errors import Conflict, Transient
from core.jobs import lifecycle
from core.jobs.common import Submission
from core.jobs.ports import Enqueue
from core.jobs.registry import kind_of, queue_of
from core.safe_values import check_value
from core.store import repos
from core.store.db import transaction
from core.store.tables import DEFAULT_PROJECT, JobRow, utcnow

log = logging.getLogger(__name__)


class NotEnqueued(Transient):
    """The job is stored as queued but the broker did not take it; the reconciler will."""

    code = "enqueue_failed"

    def __init__(self, job: JobRow) -> None:
        super().__init__(
            f"job '{job.id}' is stored and queued, but the broker is unreachable; it will be "
            "enqueued when the broker is back",
            param="broker",
        )
        self.job = job


def submit_job(
    factory: sessionmaker[Session],
    request,  # one kind's Request (core.jobs.registry.JobRequest)
    *,
    enqueue: Enqueue,
    project_id: str = DEFAULT_PROJECT,
    models_dir: Path | None = None,
    allow_paths: bool = False,
) -> JobRow:
    """Check the whole request (ids of ``project_id`` only: another project's are as
    missing), insert the job as queued with the jobs it creates, commit, then enqueue those
    that wait for nothing. ``NotEnqueued`` when the broker fails after the commit: the job
    stays queued and the reconciler enqueues it."""
    kind, spec = kind_of(request.type), request.spec
    check_value(spec.model_dump(mode="python"))  # nothing the database cannot store
    with transaction(factory) as session:
        kind.check(session, spec, Submission(project_id, models_dir, allow_paths))
        job = repos.add_job(
            session,
            project_id=project_id,
            type=request.type,
            spec=spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            enqueued_at=utcnow(),  # the reconciler re-enqueues it if this process dies now
        )
        created = kind.plan(session, job, spec)
        ready = [j for j in (job, *created) if not lifecycle.is_waiting(session, j)]
    _enqueue_all(ready, enqueue, job)
    return job


def job_tree(factory: sessionmaker[Session], *, job_id: str) -> list[JobRow]:
    """Job ``job_id`` and the jobs it created (a compare job's children), oldest first."""
    with factory() as session:
        job = repos.get_or_404(session, JobRow, job_id, "job")
        return [job, *repos.child_jobs(session, parent_id=job_id)]


def cancel_job(factory: sessionmaker[Session], *, job_id: str, enqueue: Enqueue) -> JobRow:
    """A queued job is cancelled at once; a running one is asked to stop at its next step.
    Cancelling a job cancels the unfinished jobs it created (a compare job's children).
    Jobs that needed a cancelled one are cancelled with it; jobs that only waited for it
    are enqueued once nothing else holds them."""
    ready: list[JobRow] = []
    with transaction(factory) as session:
        job = repos.lock_job(session, job_id=job_id)
        if job.status in repos.TERMINAL:
            raise Conflict(f"job '{job_id}' already {job.status}", code="job_finished", param="id")
        for child in repos.child_jobs(session, parent_id=job_id):
            if child.status not in repos.TERMINAL:
                ready += _cancel(session, repos.lock_job(session, job_id=child.id))
        ready += _cancel(session, job)
    enqueue_released([j for j in ready if j.status == "queued"], enqueue)
    return job


def _cancel(session: Session, job: JobRow) -> list[JobRow]:
    if job.status == "queued":
        job.cancel_requested = True
        return lifecycle.end(session, job, "cancelled")
    if job.status == "running" and not job.cancel_requested:
        job.cancel_requested = True
        repos.add_event(session, job_id=job.id, kind="log", message="cancel requested")
    return []


def enqueue_released(jobs: list[JobRow], enqueue: Enqueue) -> None:
    """Enqueue jobs an ending job freed; one the broker misses is the reconciler's to find."""
    for job in jobs:
        try:
            enqueue(job.id, queue_of(job.type))
        except Exception:
            log.warning("job %s is free to run but was not enqueued", job.id, exc_info=True)


def _enqueue_all(jobs: list[JobRow], enqueue: Enqueue, answer: JobRow) -> None:
    try:
        for job in jobs:
            enqueue(job.id, queue_of(job.type))
    except Exception:
        log.warning("job %s committed but not enqueued", answer.id, exc_info=True)
        raise NotEnqueued(answer) from None

"""Submit, read and cancel jobs. Submission commits first and enqueues after the commit."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.catalog.models import model_location
from core.errors import Conflict, InvalidInput
from core.jobs.specs import (
    QUEUE_OF,
    EvalJob,
    FinetuneJob,
    IndexJob,
    MineJob,
    finetune_spec,
    mining_spec,
)
from core.models.resolve import check_reference
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, JobRow, utcnow

Enqueue = Callable[[str, str], None]
"""``enqueue(job_id, queue)``: hands the job to the broker (wired by the entry point)."""


def submit_job(
    factory: sessionmaker[Session],
    request: EvalJob | IndexJob | MineJob | FinetuneJob,
    *,
    enqueue: Enqueue,
    models_dir: Path | None = None,
    allow_paths: bool = False,
) -> JobRow:
    """Check that the dataset and model exist, insert the job as queued, commit, enqueue."""
    spec = request.spec
    with transaction(factory) as session:
        repos.get_or_404(session, DatasetRow, spec.dataset_id, "dataset")
        ref = getattr(spec, "model", None) or getattr(spec, "base_model", None)
        _check_model(session, ref, models_dir, allow_paths)
        if isinstance(request, MineJob):
            mining_spec(request.spec)
        elif isinstance(request, FinetuneJob):
            finetune_spec(request.spec, model_location(session, request.spec.base_model))
        job = repos.add_job(
            session,
            type=request.type,
            spec=spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            enqueued_at=utcnow(),  # the reconciler re-enqueues it if this process dies now
        )
    enqueue(job.id, QUEUE_OF[request.type])
    return job


def _check_model(
    session: Session, ref: str | None, models_dir: Path | None, allow_paths: bool
) -> None:
    if ref is None:
        raise InvalidInput("a model is required", code="invalid_model", param="model")
    location = model_location(session, ref)
    if location != ref:
        return  # a fine-tuned model: its directory comes from our own table
    check_reference(ref, models_dir=models_dir, allow_paths=allow_paths)


def cancel_job(factory: sessionmaker[Session], *, job_id: str) -> JobRow:
    """A queued job is cancelled at once; a running one is asked to stop at its next step."""
    with transaction(factory) as session:
        job = repos.lock_job(session, job_id=job_id)
        if job.status in repos.TERMINAL:
            raise Conflict(f"job '{job_id}' already {job.status}", code="job_finished", param="id")
        if job.status == "queued":
            job.status, job.finished_at, job.cancel_requested = "cancelled", utcnow(), True
            repos.add_event(session, job_id=job_id, kind="state", message="cancelled")
        elif job.status == "running" and not job.cancel_requested:
            job.cancel_requested = True
            repos.add_event(session, job_id=job_id, kind="log", message="cancel requested")
        return job

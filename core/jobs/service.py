"""Submit, read and cancel jobs. Submission commits first and enqueues after the commit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.catalog.models import model_location
from core.compare.methods import METHODS
from core.errors import Conflict, InvalidInput, Transient
from core.jobs import compare
from core.jobs.specs import (
    QUEUE_OF,
    CompareJob,
    CompareJobSpec,
    EvalJob,
    FinetuneJob,
    FinetuneJobSpec,
    IndexJob,
    MineJob,
    NudgeJob,
    finetune_spec,
    mining_spec,
    nudge_spec,
)
from core.models.resolve import check_reference
from core.safe_values import check_value
from core.store import repos
from core.store.db import transaction
from core.store.tables import DEFAULT_PROJECT, DatasetRow, JobRow, utcnow

log = logging.getLogger(__name__)
Enqueue = Callable[[str, str], None]
"""``enqueue(job_id, queue)``: hands the job to the broker (wired by the entry point)."""


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
    request: EvalJob | IndexJob | MineJob | FinetuneJob | NudgeJob | CompareJob,
    *,
    enqueue: Enqueue,
    project_id: str = DEFAULT_PROJECT,
    models_dir: Path | None = None,
    allow_paths: bool = False,
) -> JobRow:
    """Check the whole request (the dataset and models must exist in ``project_id``; another
    project's are as missing), then insert the job as queued, commit, enqueue. A compare
    job's children are inserted and enqueued with it. ``NotEnqueued`` when the broker fails
    after the commit: the job stays queued and the reconciler enqueues it."""
    spec = request.spec
    check_value(spec.model_dump(mode="python"))  # nothing the database cannot store
    with transaction(factory) as session:
        dataset = repos.get_or_404(
            session, DatasetRow, spec.dataset_id, "dataset", project_id=project_id
        )
        _check_splits(dataset, _splits_read(request))
        if isinstance(request, NudgeJob) and request.spec.model_from_job:
            _check_source_job(session, request.spec.model_from_job, project_id)
        else:
            ref = getattr(spec, "model", None) or getattr(spec, "base_model", None)
            _check_model(session, ref, project_id, models_dir, allow_paths)
        if isinstance(request, MineJob):
            mining_spec(request.spec)
        elif isinstance(request, FinetuneJob):
            base = model_location(session, request.spec.base_model, project_id=project_id)
            finetune_spec(request.spec, base)
        elif isinstance(request, NudgeJob):
            nudge_spec(request.spec)
        elif isinstance(request, CompareJob):
            _check_compare(session, request.spec, project_id)
        job = repos.add_job(
            session,
            project_id=project_id,
            type=request.type,
            spec=spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            enqueued_at=utcnow(),  # the reconciler re-enqueues it if this process dies now
        )
        children = []
        if isinstance(request, CompareJob):
            children = compare.add_children(session, job, request.spec)
    try:
        for queued in (job, *children):
            enqueue(queued.id, QUEUE_OF[queued.type])
    except Exception:
        log.warning("job %s committed but not enqueued", job.id, exc_info=True)
        raise NotEnqueued(job) from None
    return job


def _splits_read(
    request: EvalJob | IndexJob | MineJob | FinetuneJob | NudgeJob | CompareJob,
) -> list[str]:
    """The splits of its dataset a job reads (a compare job checks its own)."""
    spec = request.spec
    if isinstance(request, EvalJob | MineJob):
        return [request.spec.split]
    if isinstance(request, FinetuneJob | NudgeJob):
        return [s for s in (spec.train_split, spec.val_split) if s]
    return []


def _check_splits(dataset: DatasetRow, splits: list[str]) -> None:
    have = dataset.stats.get("splits", {})
    for split in splits:
        if split not in have:
            raise InvalidInput(
                f"dataset '{dataset.id}' has no split '{split}' (splits: "
                f"{', '.join(sorted(have)) or 'none'})",
                code="no_split",
                param="spec",
            )


def _check_source_job(session: Session, job_id: str, project_id: str) -> None:
    source = repos.get_or_404(session, JobRow, job_id, "job", project_id=project_id)
    if source.type != "finetune":
        raise InvalidInput(f"job '{job_id}' is not a finetune job", param="model_from_job")


def _check_compare(session: Session, spec: CompareJobSpec, project_id: str) -> None:
    """Every split the children will read exists, and every fine-tune spec is valid."""
    needed = [(spec.dataset_id, spec.train_split), (spec.dataset_id, spec.test_split)]
    if spec.forgetting_dataset_id is not None:
        needed.append((spec.forgetting_dataset_id, spec.forgetting_split))
    for dataset_id, split in needed:
        row = repos.get_or_404(session, DatasetRow, dataset_id, "dataset", project_id=project_id)
        if split not in row.stats.get("splits", {}):
            raise InvalidInput(
                f"dataset '{dataset_id}' has no split '{split}'", code="no_split", param="spec"
            )
    base = model_location(session, spec.base_model, project_id=project_id)
    for method in spec.methods:
        if finetune := METHODS[method].finetune:
            finetune_spec(
                FinetuneJobSpec(
                    dataset_id=spec.dataset_id,
                    base_model=spec.base_model,
                    method=finetune,
                    params=spec.params,
                ),
                base,
            )


def _check_model(
    session: Session, ref: str | None, project_id: str, models_dir: Path | None, allow_paths: bool
) -> None:
    if ref is None:
        raise InvalidInput("a model is required", code="invalid_model", param="model")
    location = model_location(session, ref, project_id=project_id)
    if location != ref:
        return  # a fine-tuned model: its directory comes from our own table
    check_reference(ref, models_dir=models_dir, allow_paths=allow_paths)


def cancel_job(factory: sessionmaker[Session], *, job_id: str) -> JobRow:
    """A queued job is cancelled at once; a running one is asked to stop at its next step.
    Cancelling a job cancels the unfinished jobs it created (a compare job's children)."""
    with transaction(factory) as session:
        job = repos.lock_job(session, job_id=job_id)
        if job.status in repos.TERMINAL:
            raise Conflict(f"job '{job_id}' already {job.status}", code="job_finished", param="id")
        _cancel(session, job)
        for child in repos.child_jobs(session, parent_id=job_id):
            if child.status not in repos.TERMINAL:
                _cancel(session, repos.lock_job(session, job_id=child.id))
        return job


def _cancel(session: Session, job: JobRow) -> None:
    if job.status == "queued":
        job.status, job.finished_at, job.cancel_requested = "cancelled", utcnow(), True
        repos.add_event(session, job_id=job.id, kind="state", message="cancelled")
    elif job.status == "running" and not job.cancel_requested:
        job.cancel_requested = True
        repos.add_event(session, job_id=job.id, kind="log", message="cancel requested")

"""The plan of a compare job: one queued child job per method, created with it.

Each child is visible and cancellable on its own. The children are enqueued like any job, so
idle workers may run them; the compare job itself runs each one not yet taken, in order
(``core.jobs.compare_run``), so a single worker is enough.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.compare.methods import METHODS
from core.jobs.specs import CompareJobSpec, EvalJobSpec, FinetuneJobSpec, NudgeJobSpec
from core.store import repos
from core.store.tables import JobRow, utcnow


def add_children(session: Session, parent: JobRow, spec: CompareJobSpec) -> list[JobRow]:
    """Insert a queued child job per method and record them, in order, on the parent."""
    children: list[dict[str, str]] = []
    made: dict[str, str] = {}
    rows = []
    for method in spec.methods:
        job_type, child_spec = _child_spec(spec, method, made)
        child = repos.add_job(
            session,
            project_id=parent.project_id,
            type=job_type,
            spec=child_spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            parent_id=parent.id,
            enqueued_at=utcnow(),
        )
        made[method] = child.id
        children.append({"method": method, "job_id": child.id})
        rows.append(child)
    parent.result = {"children": children}
    return rows


def _child_spec(spec: CompareJobSpec, method: str, made: dict[str, str]) -> tuple[str, Any]:
    info = METHODS[method]  # type: ignore[index]
    common = {"dataset_id": spec.dataset_id, "train_split": spec.train_split}
    if info.job_type == "eval":
        return "eval", EvalJobSpec(
            dataset_id=spec.dataset_id, model=spec.base_model, split=spec.test_split
        )
    if info.job_type == "finetune":
        return "finetune", FinetuneJobSpec(
            **common,
            base_model=spec.base_model,
            method=info.finetune,
            val_fraction=spec.val_fraction,
            params=spec.params,
        )
    source = {"model_from_job": made[info.builds_on]} if info.builds_on else {}
    return "nudge", NudgeJobSpec(
        **common,
        **(source or {"model": spec.base_model}),
        variant=info.variant,
        val_fraction=spec.val_fraction,
        test_split=spec.test_split,
    )

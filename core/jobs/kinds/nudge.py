"""nudge: move a model's corpus embeddings toward training queries (NUDGE-N / NUDGE-M) into
a new index version; the model itself is unchanged."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from sqlalchemy.orm import Session

from core.evaluation.metrics import HEADLINE_METRICS
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.jobs import lifecycle
from core.jobs.common import (
    EncodePrecision,
    EncodingOptions,
    Id,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_model,
    check_source_job,
    dataset_of,
    embedder_for,
    model_of_job,
    stages,
)
from core.jobs.context import JobContext
from core.names import Name
from core.nudge.spec import NudgeSpec
from core.store import repos
from core.store.db import transaction
from core.store.tables import IndexRow, JobRow

TYPE = "nudge"
QUEUE = "cpu"
TEST_REPORT = "test_report.json"  # in the job's artifacts
SPANS = {
    "encode_corpus": (0.05, 0.7),
    "encode_queries": (0.75, 0.1),
    "tune": (0.85, 0.05),
    "test": (0.9, 0.05),
}


class NudgeJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef | None = Field(None, description="Base model reference or fine-tuned model id.")
    model_from_job: Id | None = Field(
        None,
        description="Instead of `model`: the model a finetune, search or merge job produces. "
        "The job waits, "
        "queued and on no worker, until that one has succeeded (and fails if it does not).",
    )
    variant: Literal["nudge-n", "nudge-m"] = "nudge-n"
    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_split: Name | None = Field("test", description="Scored once the step is chosen.")
    steps: list[Annotated[float, Field(ge=0, le=100)]] | None = Field(
        None, min_length=1, max_length=1000, description="Candidate steps; None: default grid."
    )
    kind: Literal["flat", "ivf", "hnsw", "auto"] = "flat"
    precision: EncodePrecision = "fp32"

    @model_validator(mode="after")
    def _one_model(self) -> NudgeJobSpec:
        if (self.model is None) == (self.model_from_job is None):
            raise ValueError("give exactly one of 'model' and 'model_from_job'")
        return self


class NudgeJob(SpecModel):
    type: Literal["nudge"]
    spec: NudgeJobSpec


def nudge_spec(spec: NudgeJobSpec) -> NudgeSpec:
    """The domain spec; invalid values raise ``InvalidInput``."""
    return NudgeSpec(
        variant=spec.variant,
        train_split=spec.train_split,
        val_split=spec.val_split,
        val_fraction=spec.val_fraction,
        test_split=spec.test_split,
        steps=tuple(spec.steps) if spec.steps is not None else None,
    )


def check(session: Session, spec: NudgeJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.val_split)
    if spec.model_from_job is not None:
        check_source_job(session, spec.model_from_job, sub, param="model_from_job")
    else:
        assert spec.model is not None
        check_model(session, spec.model, sub)
    nudge_spec(spec)


def plan(session: Session, job: JobRow, spec: NudgeJobSpec) -> list[JobRow]:
    if spec.model_from_job is not None:
        lifecycle.depend(session, job=job, on=spec.model_from_job, required=True)
    return []


def run(ctx: JobContext, spec: NudgeJobSpec) -> dict[str, Any]:
    from core.nudge import run_nudge

    model = spec.model or model_of_job(ctx, spec.model_from_job or "", param="model_from_job")
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, model, spec, spec.precision)
    ctx.progress(0.05, stage="loaded model", force=True)
    result = run_nudge(
        ds,
        embedder,
        nudge_spec(spec),
        cache=cache_of(ctx),
        progress=stages(ctx, SPANS),
    )
    summary = result.report
    (ctx.artifacts / "nudge_report.json").write_text(json.dumps(summary.to_dict(), indent=1))
    test = result.test_report
    if test:
        test.save(ctx.artifacts / TEST_REPORT)
    tuning = {"step": summary.step, "docs_moved": summary.docs_moved, "metric": summary.metric}
    index_id = _store_index(ctx, spec, model, embedder.fingerprint, result, tuning)
    ctx.metrics(0, {f"val_{k}": v for k, v in summary.val_after.items()})
    ctx.log(f"{summary.docs_moved} documents moved, step {summary.step}")
    return {
        "index_id": index_id,
        "model": model,
        "variant": spec.variant,
        "precision": getattr(embedder, "precision", "fp32"),
        **tuning,
        "num_documents": summary.num_documents,
        "val": {"before": summary.val_before, "after": summary.val_after},
        "test": {
            "before": _headline(summary.test_before),
            "after": _headline(summary.test_after),
        },
        "test_report": TEST_REPORT if test else None,
    }


def _headline(metrics: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] for k in HEADLINE_METRICS if k in metrics}


def _store_index(
    ctx: JobContext,
    spec: NudgeJobSpec,
    model: str,
    fingerprint: str,
    result: Any,  # core.nudge.NudgeResult
    tuning: dict[str, Any],
) -> str:
    """Save the tuned vectors as a Faiss index and record it as an index version."""
    index = VectorIndex.build(result.vectors, result.doc_ids, IndexSpec(kind=spec.kind))
    path = ctx.artifacts / "index"
    index.save(path)
    with transaction(ctx.factory) as session:
        row = repos.upsert_by_job(
            session,
            IndexRow,
            job_id=ctx.job_id,
            project_id=repos.job_project(session, job_id=ctx.job_id),
            model=model,
            model_fingerprint=fingerprint,
            dataset_id=spec.dataset_id,
            path=str(path),
            kind=index.spec.kind,
            size=len(index),
            dim=index.dim,
            method=spec.variant,
            tuning={
                **tuning,
                "train_queries": result.report.train_queries,
                "val_fraction": spec.val_fraction,
            },
        )
        return row.id


Spec, Request = NudgeJobSpec, NudgeJob  # the names every kind module has

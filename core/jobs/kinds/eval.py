"""eval: score a model on one split of a dataset (Faiss search, pytrec_eval metrics)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.metrics import HEADLINE_METRICS
from core.indexing.faiss_index import IndexSpec
from core.jobs.common import (
    EncodingOptions,
    Id,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_model,
    dataset_of,
    embedder_for,
    stages,
)
from core.jobs.context import JobContext
from core.names import Name
from core.store.tables import JobRow

TYPE = "eval"
QUEUE = "cpu"
REPORT = "report.json"  # in the job's artifacts
SPANS = {"encode_corpus": (0.05, 0.8), "encode_queries": (0.85, 0.05), "index": (0.9, 0.05)}


class EvalJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef = Field(
        description="Base model reference, fine-tuned model id, or remote:<name> (the "
        "operator's embeddings endpoint)."
    )
    split: Name = "test"
    index: Literal["flat", "ivf", "hnsw", "auto"] = "flat"


class EvalJob(SpecModel):
    type: Literal["eval"]
    spec: EvalJobSpec


def check(session: Session, spec: EvalJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.split)
    check_model(session, spec.model, sub, remote=True)


def plan(session: Session, job: JobRow, spec: EvalJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: EvalJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    report = evaluate(
        ds,
        embedder,
        EvalSpec(split=spec.split, index=IndexSpec(kind=spec.index)),
        cache=cache_of(ctx),
        progress=stages(ctx, SPANS),
    )
    report.save(ctx.artifacts / REPORT)
    ctx.metrics(0, report.metrics)
    ctx.log(f"nDCG@10 {report.metrics['ndcg@10']:.4f} on {report.num_queries} queries")
    return {
        "metrics": {k: report.metrics[k] for k in HEADLINE_METRICS},
        "num_queries": report.num_queries,
        "num_documents": report.num_documents,
        "truncated": report.truncated,
        "report": REPORT,
    }


Spec, Request = EvalJobSpec, EvalJob  # the names every kind module has

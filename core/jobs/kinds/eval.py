"""eval: score a model on one split of a dataset (Faiss search, pytrec_eval metrics)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.metrics import HEADLINE_METRICS
from core.evaluation.report import EvalReport
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.indexing.stored import open_index
from core.indexing.token_index import TokenIndex
from core.jobs.common import (
    EncodePrecision,
    EncodingOptions,
    Id,
    ModelOrIndex,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_index,
    check_model,
    check_precision,
    dataset_of,
    embedder_for,
    reranker_of,
    stages,
)
from core.jobs.context import JobContext
from core.models.embedder import Embedder
from core.names import Name
from core.store import repos
from core.store.tables import IndexRow, JobRow

TYPE = "eval"
QUEUE = "cpu"
REPORT = "report.json"  # in the job's artifacts
RERANK_REPORT = "rerank.json"
ENCODING = ("max_seq_length", "query_instruction", "document_instruction")
SPANS = {"encode_corpus": (0.05, 0.8), "encode_queries": (0.85, 0.05), "index": (0.9, 0.05)}


class EvalJobSpec(ModelOrIndex):
    model: ModelRef | None = Field(
        None,
        description="Base model reference, fine-tuned model id, or remote:<name> (the "
        "operator's embeddings endpoint).",
    )
    index_id: Id | None = Field(
        None,
        description="Or search this stored index of the dataset (e.g. a NUDGE index) with its "
        "own model's queries, encoded with the options of the job that built it.",
    )
    split: Name = "test"
    index: Literal["flat", "ivf", "hnsw", "auto"] = "flat"
    reranker: ModelRef | None = Field(
        None, description="A reranker (cross-encoder) that reorders the model's top rerank_top_k."
    )
    rerank_top_k: int = Field(100, ge=1, le=1000)
    fusion_split: Name | None = Field(
        None,
        description="The split the fusion weight is chosen on; None: 'val' when the dataset has "
        "it, else 20% of the train queries held out as the fine-tunes hold them out.",
    )
    precision: EncodePrecision = "fp32"


class EvalJob(SpecModel):
    type: Literal["eval"]
    spec: EvalJobSpec


def check(session: Session, spec: EvalJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.split, spec.fusion_split)
    if spec.index_id is not None:
        check_index(session, spec.index_id, spec.dataset_id, sub)
    else:
        check_model(session, spec.model or "", sub, remote=True)
        check_precision(spec.model or "", spec.precision)
    if spec.reranker is not None:
        check_model(session, spec.reranker, sub)


def plan(session: Session, job: JobRow, spec: EvalJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: EvalJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder, stored = _first_stage(ctx, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    report = evaluate(
        ds,
        embedder,
        EvalSpec(split=spec.split, index=IndexSpec(kind=spec.index)),
        cache=cache_of(ctx),
        progress=stages(ctx, SPANS),
        index=stored,
    )
    report.save(ctx.artifacts / REPORT)
    ctx.metrics(0, report.metrics)
    ctx.log(f"nDCG@10 {report.metrics['ndcg@10']:.4f} on {report.num_queries} queries")
    result = {
        "metrics": {k: report.metrics[k] for k in HEADLINE_METRICS},
        "num_queries": report.num_queries,
        "num_documents": report.num_documents,
        "truncated": report.truncated,
        "precision": report.precision,
        "runtime": report.runtime,
        "report": REPORT,
    }
    if spec.index_id is not None:
        result["index_id"] = spec.index_id
    if spec.reranker is not None:
        result["rerank"] = _rerank(ctx, spec, ds, embedder, report, stored)
    return result


def _first_stage(
    ctx: JobContext, spec: EvalJobSpec
) -> tuple[Embedder, VectorIndex | TokenIndex | None]:
    """The model that encodes the queries and, for ``index_id``, the stored index searched
    (queries encoded as the job that built it encoded its documents)."""
    if spec.index_id is None:
        return embedder_for(ctx, spec.model or "", spec, spec.precision), None
    with ctx.factory() as session:
        row = repos.get_or_404(session, IndexRow, spec.index_id, "index")
        built = session.get(JobRow, row.job_id) if row.job_id else None
        model, path, kind = row.model, row.path, row.kind
    options = {k: v for k, v in (built.spec if built else {}).items() if k in ENCODING}
    encoding = EncodingOptions(**{**options, "batch_size": spec.batch_size})
    return embedder_for(ctx, model, encoding, spec.precision), open_index(path, kind)


def _rerank(
    ctx: JobContext,
    spec: EvalJobSpec,
    ds: RetrievalDataset,
    embedder: Embedder,
    report: EvalReport,
    stored: VectorIndex | TokenIndex | None,
) -> dict[str, Any]:
    """The first stage's top k reranked and fused; the summary (the whole report is saved)."""
    from core.reranking.pipeline import rerank_embedder

    ctx.progress(0.95, stage="rerank", force=True)
    reranked = rerank_embedder(
        ds,
        embedder,
        reranker_of(ctx, spec.reranker),
        split=spec.split,
        top_k=spec.rerank_top_k,
        val_split=spec.fusion_split,
        first_report=report,
        cache=cache_of(ctx),
        index=stored,
    )
    (ctx.artifacts / RERANK_REPORT).write_text(json.dumps(reranked.to_dict(), indent=1), "utf-8")
    ctx.log(f"reranked: {reranked.verdict}")
    return {
        "metrics": {
            name: {k: values[k] for k in HEADLINE_METRICS}
            for name, values in reranked.metrics.items()
        },
        "weight": reranked.weight,
        "weight_from": reranked.weight_from,
        "helps": reranked.helps,
        "verdict": reranked.verdict,
        "latency": reranked.latency,
        "top_k": reranked.top_k,
        "report": RERANK_REPORT,
    }


Spec, Request = EvalJobSpec, EvalJob  # the names every kind module has

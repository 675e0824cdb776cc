"""One function per job type: read the spec, call the domain, record artifacts and metrics."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.catalog import datasets as dataset_catalog
from core.catalog.models import model_location
from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, encode_cached, evaluate
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.jobs.context import JobContext
from core.jobs.specs import (
    CompareJobSpec,
    EncodingOptions,
    EvalJobSpec,
    FinetuneJobSpec,
    IndexJobSpec,
    MineJobSpec,
    NudgeJobSpec,
    finetune_spec,
    mining_spec,
    nudge_spec,
)
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, IndexRow, ModelRow

HEADLINE = ("ndcg@10", "recall@10", "mrr@10", "map@10", "recall@100")


def _dataset(ctx: JobContext, dataset_id: str) -> RetrievalDataset:
    with ctx.factory() as session:
        row = repos.get_or_404(session, DatasetRow, dataset_id, "dataset")
    return dataset_catalog.load(row)


def _embedder(ctx: JobContext, ref: str, options: EncodingOptions) -> Embedder:
    with ctx.factory() as session:
        location = model_location(session, ref)
    settings = ctx.settings
    return load_embedder(
        location,
        models_dir=settings.models_dir,
        device=settings.device,
        trust_remote_code=settings.trust_remote_code,
        batch_size=options.batch_size,
        max_seq_length=options.max_seq_length,
        query_instruction=options.query_instruction,
        document_instruction=options.document_instruction,
        allow_paths=_trusted_path(location),
    )


def _trusted_path(location: str) -> bool:
    """Whether a job may load ``location`` as a directory: only absolute paths, which come
    from our own tables or the local CLI (the API refuses them). A relative reference is
    never looked up in the worker's working directory."""
    return Path(location).is_absolute()


def _stages(ctx: JobContext, spans: dict[str, tuple[float, float]]):
    def progress(stage: str, done: int, total: int) -> None:
        ctx.stage(stage, *spans.get(stage, (0.0, 0.0)))(done, total)

    return progress


def run_eval(ctx: JobContext, spec: EvalJobSpec) -> dict[str, Any]:
    ds = _dataset(ctx, spec.dataset_id)
    embedder = _embedder(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    spans = {"encode_corpus": (0.05, 0.8), "encode_queries": (0.85, 0.05), "index": (0.9, 0.05)}
    report = evaluate(
        ds,
        embedder,
        EvalSpec(split=spec.split, index=IndexSpec(kind=spec.index)),
        cache=EmbeddingCache(ctx.settings.cache_dir),
        progress=_stages(ctx, spans),
    )
    path = report.save(ctx.artifacts / "report.json")
    ctx.metrics(0, report.metrics)
    ctx.log(f"nDCG@10 {report.metrics['ndcg@10']:.4f} on {report.num_queries} queries")
    return {
        "metrics": {k: report.metrics[k] for k in HEADLINE},
        "num_queries": report.num_queries,
        "num_documents": report.num_documents,
        "truncated": report.truncated,
        "report_path": str(path),
    }


def run_index(ctx: JobContext, spec: IndexJobSpec) -> dict[str, Any]:
    ds = _dataset(ctx, spec.dataset_id)
    embedder = _embedder(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    doc_ids = list(ds.corpus)
    vectors, _ = encode_cached(
        embedder,
        [ds.corpus[d].full_text for d in doc_ids],
        "document",
        EmbeddingCache(ctx.settings.cache_dir),
        ctx.stage("encode_corpus", 0.05, 0.85),
    )
    index = VectorIndex.build(
        vectors, doc_ids, IndexSpec(kind=spec.kind), progress=ctx.stage("index", 0.9, 0.1)
    )
    path = ctx.artifacts / "index"
    index.save(path)
    with transaction(ctx.factory) as session:
        row = repos.upsert_by_job(
            session,
            IndexRow,
            job_id=ctx.job_id,
            project_id=repos.job_project(session, job_id=ctx.job_id),
            model=spec.model,
            model_fingerprint=embedder.fingerprint,
            dataset_id=spec.dataset_id,
            path=str(path),
            kind=index.spec.kind,
            size=len(index),
            dim=index.dim,
        )
        index_id = row.id
    return {"index_id": index_id, "size": len(index), "dim": index.dim, "kind": index.spec.kind}


def run_mine(ctx: JobContext, spec: MineJobSpec) -> dict[str, Any]:
    from core.mining import mine_negatives

    with ctx.factory() as session:
        done = repos.dataset_from_job(session, job_id=ctx.job_id)
    if done is not None:  # a redelivered job whose dataset was already stored
        return {"dataset_id": done.id}
    ds = _dataset(ctx, spec.dataset_id)
    embedder = _embedder(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    spans = {
        "encode_corpus": (0.05, 0.6),
        "encode_queries": (0.65, 0.1),
        "index": (0.75, 0.05),
        "mine": (0.8, 0.15),
    }
    mined, report = mine_negatives(
        ds,
        embedder,
        mining_spec(spec),
        cache=EmbeddingCache(ctx.settings.cache_dir),
        progress=_stages(ctx, spans),
        should_cancel=ctx.should_cancel,
    )
    (ctx.artifacts / "mining_report.json").write_text(json.dumps(report.as_dict(), indent=1))
    ctx.log(f"mined {report.negatives} negatives for {report.queries} queries")
    with transaction(ctx.factory) as session:
        row = dataset_catalog.store_dataset(
            session,
            settings=ctx.settings,
            ds=mined,
            name=f"{ds.name[:50]}-mined",
            source_job_id=ctx.job_id,
        )
        dataset_id = row.id
    return {
        "dataset_id": dataset_id,
        "negatives": report.negatives,
        "queries": report.queries,
        "queries_short": report.queries_short,
        "removed": report.removed,
    }


class DbReporter:
    """Feeds a fine-tune's steps, losses and evaluations into the job's rows."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        self.ctx.progress(0.05 + 0.9 * step / max(total, 1), stage="train", step=step, total=total)
        self.ctx.metrics(step, {"loss": loss, "learning_rate": lr})

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.ctx.metrics(step, {f"eval_{k}": v for k, v in metrics.items()})

    def on_event(self, message: str) -> None:
        self.ctx.log(message)


def run_finetune_job(ctx: JobContext, spec: FinetuneJobSpec) -> dict[str, Any]:
    from core.datasets.split import split_by_query
    from core.training import run_finetune

    ds = _dataset(ctx, spec.dataset_id)
    with ctx.factory() as session:
        base = model_location(session, spec.base_model)
    val_split = spec.val_split
    if val_split is None:
        ds = split_by_query(
            ds,
            source=spec.train_split,
            val_fraction=spec.val_fraction,
            names=(spec.train_split, "val"),
        )
        val_split = "val"
    ctx.progress(0.02, stage="preparing", force=True)
    result = run_finetune(
        finetune_spec(spec, base),
        ds,
        ctx.artifacts / "model",
        train_split=spec.train_split,
        val_split=val_split,
        reporter=DbReporter(ctx),
        should_cancel=ctx.should_cancel,
        resume=True,
        models_dir=ctx.settings.models_dir,
        allow_paths=_trusted_path(base),
        cache=EmbeddingCache(ctx.settings.cache_dir),
    )
    metrics = {"before": result.metrics_before, "after": result.metrics_after}
    with transaction(ctx.factory) as session:
        row = repos.upsert_by_job(
            session,
            ModelRow,
            job_id=ctx.job_id,
            project_id=repos.job_project(session, job_id=ctx.job_id),
            reference="",
            kind="finetuned",
            method=spec.method,
            base_model=spec.base_model,
            path=str(result.model_dir),
            dataset_id=spec.dataset_id,
            metrics=metrics,
        )
        row.reference = row.id
        model_id = row.id
    return {
        "model_id": model_id,
        "metrics": metrics,
        "train_seconds": result.train_seconds,
        "samples_per_second": result.samples_per_second,
    }


NUDGE_SPANS = {
    "encode_corpus": (0.05, 0.7),
    "encode_queries": (0.75, 0.1),
    "tune": (0.85, 0.05),
    "test": (0.9, 0.05),
}


def run_nudge_job(ctx: JobContext, spec: NudgeJobSpec) -> dict[str, Any]:
    """NUDGE the corpus embeddings of a model into a new index version of the dataset."""
    from core.nudge import run_nudge

    model = spec.model or _model_from_job(ctx, spec.model_from_job or "")
    ds = _dataset(ctx, spec.dataset_id)
    embedder = _embedder(ctx, model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    result = run_nudge(
        ds,
        embedder,
        nudge_spec(spec),
        cache=EmbeddingCache(ctx.settings.cache_dir),
        progress=_stages(ctx, NUDGE_SPANS),
    )
    summary = result.report
    (ctx.artifacts / "nudge_report.json").write_text(json.dumps(summary.to_dict(), indent=1))
    test = result.test_report
    test_path = test.save(ctx.artifacts / "test_report.json") if test else None
    tuning = {"step": summary.step, "docs_moved": summary.docs_moved, "metric": summary.metric}
    index_id = _store_nudge_index(ctx, spec, model, embedder.fingerprint, result, tuning)
    ctx.metrics(0, {f"val_{k}": v for k, v in summary.val_after.items()})
    ctx.log(f"{summary.docs_moved} documents moved, step {summary.step}")
    return {
        "index_id": index_id,
        "model": model,
        "variant": spec.variant,
        **tuning,
        "num_documents": summary.num_documents,
        "val": {"before": summary.val_before, "after": summary.val_after},
        "test": {
            "before": {k: summary.test_before[k] for k in HEADLINE if k in summary.test_before},
            "after": {k: summary.test_after[k] for k in HEADLINE if k in summary.test_after},
        },
        "test_report_path": str(test_path) if test_path else None,
    }


def _store_nudge_index(
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


def _model_from_job(ctx: JobContext, job_id: str) -> str:
    from core.jobs.compare_run import finished_job

    job = finished_job(ctx, job_id)
    if job.type != "finetune":
        raise InvalidInput(f"job '{job_id}' is not a finetune job", param="model_from_job")
    return job.result["model_id"]


def run_compare_job(ctx: JobContext, spec: CompareJobSpec) -> dict[str, Any]:
    from core.jobs.compare_run import run_compare

    return run_compare(ctx, spec)


HANDLERS: dict[str, Callable[[JobContext, Any], dict[str, Any]]] = {
    "eval": run_eval,
    "index": run_index,
    "mine": run_mine,
    "finetune": run_finetune_job,
    "nudge": run_nudge_job,
    "compare": run_compare_job,
}

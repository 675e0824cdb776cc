"""One function per job type: read the spec, call the domain, record artifacts and metrics."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from core.catalog import datasets as dataset_catalog
from core.catalog.models import model_location
from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, encode_cached, evaluate
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.jobs.context import JobContext
from core.jobs.specs import EncodingOptions, EvalJobSpec, IndexJobSpec
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, IndexRow

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
    )


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


HANDLERS: dict[str, Callable[[JobContext, Any], dict[str, Any]]] = {
    "eval": run_eval,
    "index": run_index,
}

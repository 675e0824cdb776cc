"""index: encode a dataset's corpus with a model into an index that can be searched: Faiss for
dense vectors, a MaxSim token index for a late-interaction (ColBERT) model."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.indexing.token_index import KIND as TOKEN_KIND
from core.indexing.token_index import TokenIndex, check_budget
from core.jobs.common import (
    EncodingOptions,
    Id,
    ModelRef,
    SpecModel,
    Submission,
    check_dataset,
    check_model,
    dataset_of,
    embedder_for,
)
from core.jobs.context import JobContext
from core.models.cache import EmbeddingCache
from core.models.multi_vector import MultiVectorEmbedder, is_multi_vector
from core.store import repos
from core.store.db import transaction
from core.store.tables import IndexRow, JobRow

TYPE = "index"
QUEUE = "cpu"


class IndexJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    kind: Literal["flat", "ivf", "hnsw", "auto"] = Field(
        "auto", description="Faiss index kind; a ColBERT model's index is always exact MaxSim."
    )


class IndexJob(SpecModel):
    type: Literal["index"]
    spec: IndexJobSpec


def check(session: Session, spec: IndexJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    location = Path(check_model(session, spec.model, sub))
    if not location.is_absolute() and sub.models_dir is not None:
        location = sub.models_dir / location  # a model an operator put in the models directory
    if location.is_dir() and is_multi_vector(location):
        _check_kind(spec)


def _check_kind(spec: IndexJobSpec) -> None:
    if spec.kind != "auto":
        raise InvalidInput(
            f"model '{spec.model}' is a ColBERT model: its index is exact MaxSim; "
            "leave kind as 'auto'",
            code="invalid_index_kind",
            param="spec.kind",
        )


def plan(session: Session, job: JobRow, spec: IndexJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: IndexJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
    if isinstance(embedder, MultiVectorEmbedder):
        return _token_index(ctx, spec, ds, embedder)
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
    index_id = _record(
        ctx, spec, embedder.fingerprint, path, index.spec.kind, len(index), index.dim
    )
    return {"index_id": index_id, "size": len(index), "dim": index.dim, "kind": index.spec.kind}


def _token_index(
    ctx: JobContext, spec: IndexJobSpec, ds: RetrievalDataset, embedder: MultiVectorEmbedder
) -> dict[str, Any]:
    """Every document's token vectors in a MaxSim index, refused before any encoding when
    its estimated size is over the ``late_index_memory_mb`` budget."""
    _check_kind(spec)
    doc_ids = list(ds.corpus)
    texts = [ds.corpus[d].full_text for d in doc_ids]
    limit = embedder.max_seq_length
    counts = [min(n, limit) for n in embedder.count_tokens(texts, "document")]
    estimate = check_budget(counts, embedder.dim, ctx.settings.late_index_memory_mb << 20)
    ctx.log(f"token index: about {estimate / len(doc_ids):.0f} bytes per document (estimate)")
    vectors, _ = encode_cached(
        embedder,
        texts,
        "document",
        EmbeddingCache(ctx.settings.cache_dir),
        ctx.stage("encode_corpus", 0.05, 0.85),
    )
    index = TokenIndex.build(vectors, doc_ids, progress=ctx.stage("index", 0.9, 0.1))
    path = ctx.artifacts / "index"
    index.save(path)
    index_id = _record(ctx, spec, embedder.fingerprint, path, TOKEN_KIND, len(index), index.dim)
    return {
        "index_id": index_id,
        "size": len(index),
        "dim": index.dim,
        "kind": TOKEN_KIND,
        "tokens": len(index.tokens),
        "bytes": index.nbytes,
        "bytes_per_document": round(index.bytes_per_document, 1),
    }


def _record(
    ctx: JobContext,
    spec: IndexJobSpec,
    fingerprint: str,
    path: Path,
    kind: str,
    size: int,
    dim: int,
) -> str:
    """The index row of this job (upserted: a rerun replaces it)."""
    with transaction(ctx.factory) as session:
        row = repos.upsert_by_job(
            session,
            IndexRow,
            job_id=ctx.job_id,
            project_id=repos.job_project(session, job_id=ctx.job_id),
            model=spec.model,
            model_fingerprint=fingerprint,
            dataset_id=spec.dataset_id,
            path=str(path),
            kind=kind,
            size=size,
            dim=dim,
        )
        return row.id


Spec, Request = IndexJobSpec, IndexJob  # the names every kind module has

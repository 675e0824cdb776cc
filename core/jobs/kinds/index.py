"""index: encode a dataset's corpus with a model into an index that can be searched: Faiss for
dense vectors, a MaxSim token index for a late-interaction (ColBERT) model.

A corpus of more than ``shard_documents`` documents is encoded by ``encode`` children, one per
shard, on any number of workers; the index job depends on them all and, once they have
succeeded, finds every vector in the shared cache. No worker waits for another: the index job
is enqueued by the end of its last shard (core/jobs/lifecycle.py), and a failed shard fails it
with ``dependency_failed``. The corpus vectors are gathered into a memory-mapped file under
the job's artifacts, not into RAM, and removed once the index is written.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy.orm import Session

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, Kind, VectorIndex
from core.indexing.token_index import KIND as TOKEN_KIND
from core.indexing.token_index import TokenIndex, check_budget
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
    dataset_of,
    embedder_for,
)
from core.jobs.context import JobContext
from core.jobs.kinds import encode
from core.models.multi_vector import MultiVectorEmbedder, is_multi_vector
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, IndexRow, JobRow, utcnow

TYPE = "index"
QUEUE = "cpu"
SHARD_DOCUMENTS = 200_000
VECTORS = "vectors.npy"  # in the job's artifacts while the index is built


class IndexJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    kind: Kind = Field(
        "auto", description="Faiss index kind; a ColBERT model's index is always exact MaxSim."
    )
    shard_documents: int = Field(
        SHARD_DOCUMENTS,
        ge=1,
        description="A larger corpus is encoded in shards of this many documents, in parallel.",
    )
    precision: EncodePrecision = "fp32"


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
    if _shards(session, spec) > encode.MAX_SHARDS:
        msg = f"shard_documents {spec.shard_documents} makes more than {encode.MAX_SHARDS} shards"
        raise InvalidInput(msg, code="too_many_shards", param="shard_documents")


def _check_kind(spec: IndexJobSpec) -> None:
    if spec.kind != "auto":
        raise InvalidInput(
            f"model '{spec.model}' is a ColBERT model: its index is exact MaxSim; "
            "leave kind as 'auto'",
            code="invalid_index_kind",
            param="spec.kind",
        )


def _shards(session: Session, spec: IndexJobSpec) -> int:
    """Encode shards the corpus needs: 0 when the index job encodes it itself."""
    documents = int(session.get(DatasetRow, spec.dataset_id).stats.get("documents", 0))
    return 0 if documents <= spec.shard_documents else math.ceil(documents / spec.shard_documents)


def plan(session: Session, job: JobRow, spec: IndexJobSpec) -> list[JobRow]:
    """One ``encode`` child per shard when the corpus is above ``shard_documents``."""
    shards = _shards(session, spec)
    if not shards:
        return []
    options = spec.model_dump(include={*EncodingOptions.model_fields, "precision"})
    children = []
    for shard in range(shards):
        child_spec = encode.Spec(
            **options, dataset_id=spec.dataset_id, model=spec.model, shard=shard, shards=shards
        )
        child = repos.add_job(
            session,
            project_id=job.project_id,
            type=encode.TYPE,
            spec=child_spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            parent_id=job.id,
            enqueued_at=utcnow(),
        )
        lifecycle.depend(session, job=job, on=child.id, required=True)
        children.append(child)
    job.result = {"shards": [c.id for c in children]}
    return children


def run(ctx: JobContext, spec: IndexJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec, spec.precision)
    ctx.progress(0.05, stage="loaded model", force=True)
    if isinstance(embedder, MultiVectorEmbedder):
        return _token_index(ctx, spec, ds, embedder)
    doc_ids = list(ds.corpus)
    vectors_file = ctx.artifacts / VECTORS
    vectors, cached = encode_cached(
        embedder,
        [ds.corpus[d].full_text for d in doc_ids],
        "document",
        cache_of(ctx),
        ctx.stage("encode_corpus", 0.05, 0.85),
        out=lambda n, dim: np.lib.format.open_memmap(vectors_file, "w+", np.float32, (n, dim)),
    )
    ctx.log(f"{cached} of {len(doc_ids)} document vectors came from the cache")
    index = VectorIndex.build(
        vectors, doc_ids, IndexSpec(kind=spec.kind), progress=ctx.stage("index", 0.9, 0.1)
    )
    del vectors
    vectors_file.unlink(missing_ok=True)
    path = ctx.artifacts / "index"
    index.save(path)
    index_id = _record(
        ctx, spec, embedder.fingerprint, path, index.spec.kind, len(index), index.dim
    )
    return {
        "index_id": index_id,
        "size": len(index),
        "dim": index.dim,
        "kind": index.spec.kind,
        "recall_at_10": index.quality["recall_at_10"],  # against exact search, at build time
        "precision": embedder.precision,
    }


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
        cache_of(ctx),
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

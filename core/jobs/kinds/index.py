"""index: encode a dataset's corpus with a model into a Faiss index that can be searched."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy.orm import Session

from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, VectorIndex
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
from core.store import repos
from core.store.db import transaction
from core.store.tables import IndexRow, JobRow

TYPE = "index"
QUEUE = "cpu"


class IndexJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    kind: Literal["flat", "ivf", "hnsw", "auto"] = "auto"


class IndexJob(SpecModel):
    type: Literal["index"]
    spec: IndexJobSpec


def check(session: Session, spec: IndexJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    check_model(session, spec.model, sub)


def plan(session: Session, job: JobRow, spec: IndexJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: IndexJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec)
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


Spec, Request = IndexJobSpec, IndexJob  # the names every kind module has

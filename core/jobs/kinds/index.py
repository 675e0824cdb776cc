"""index: encode a dataset's corpus with a model into a Faiss index that can be searched.

A corpus of more than ``shard_documents`` documents is encoded by ``encode`` children, one per
shard, on any number of workers; the index job depends on them all and, once they have
succeeded, finds every vector in the shared cache. No worker waits for another: the index job
is enqueued by the end of its last shard (core/jobs/lifecycle.py), and a failed shard fails it
with ``dependency_failed``. The corpus vectors are gathered into a memory-mapped file under
the job's artifacts, not into RAM, and removed once the index is written.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, Kind, VectorIndex
from core.jobs import lifecycle
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
)
from core.jobs.context import JobContext
from core.jobs.kinds import encode
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
    kind: Kind = "auto"
    shard_documents: int = Field(
        SHARD_DOCUMENTS,
        ge=1,
        description="A larger corpus is encoded in shards of this many documents, in parallel.",
    )


class IndexJob(SpecModel):
    type: Literal["index"]
    spec: IndexJobSpec


def check(session: Session, spec: IndexJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    check_model(session, spec.model, sub)
    if _shards(session, spec) > encode.MAX_SHARDS:
        msg = f"shard_documents {spec.shard_documents} makes more than {encode.MAX_SHARDS} shards"
        raise InvalidInput(msg, code="too_many_shards", param="shard_documents")


def _shards(session: Session, spec: IndexJobSpec) -> int:
    """Encode shards the corpus needs: 0 when the index job encodes it itself."""
    documents = int(session.get(DatasetRow, spec.dataset_id).stats.get("documents", 0))
    return 0 if documents <= spec.shard_documents else math.ceil(documents / spec.shard_documents)


def plan(session: Session, job: JobRow, spec: IndexJobSpec) -> list[JobRow]:
    """One ``encode`` child per shard when the corpus is above ``shard_documents``."""
    shards = _shards(session, spec)
    if not shards:
        return []
    options = spec.model_dump(include=set(EncodingOptions.model_fields))
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
    embedder = embedder_for(ctx, spec.model, spec)
    ctx.progress(0.05, stage="loaded model", force=True)
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
    return {
        "index_id": index_id,
        "size": len(index),
        "dim": index.dim,
        "kind": index.spec.kind,
        "recall_at_10": index.quality["recall_at_10"],  # against exact search, at build time
    }


Spec, Request = IndexJobSpec, IndexJob  # the names every kind module has

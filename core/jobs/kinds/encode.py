"""encode: one shard of a dataset's corpus into the shared embedding cache.

An index job over a corpus larger than its ``shard_documents`` plans one ``encode`` child per
shard and waits for them (a dependency, like compare's children), so many workers encode one
corpus in parallel and the index job then finds every vector in the cache. Shards are
contiguous slices of the corpus in its stored order. A shard writes its vectors in chunks,
each its own cache shard, so it is idempotent (a second run encodes nothing) and resumable:
a lost worker loses only the chunk it was encoding, and the job's next delivery, on any
worker, carries on from there.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field, model_validator
from sqlalchemy.orm import Session

from core.evaluation.evaluator import cache_key
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
from core.store.tables import JobRow

TYPE = "encode"
QUEUE = "gpu"  # encoding is what a GPU speeds up; CPU-only deployments consume both queues
CHUNK = 4096  # texts per cache shard: what a lost worker may have to encode again
MAX_SHARDS = 1000  # at the default 200,000 documents a shard: 200M documents


class EncodeJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    shard: int = Field(0, ge=0)
    shards: int = Field(1, ge=1, le=MAX_SHARDS)
    chunk_size: int = Field(CHUNK, ge=1, le=1 << 20)
    precision: EncodePrecision = "fp32"

    @model_validator(mode="after")
    def _shard_in_range(self) -> EncodeJobSpec:
        if self.shard >= self.shards:
            raise ValueError(f"shard {self.shard} of {self.shards}: shards count from 0")
        return self


class EncodeJob(SpecModel):
    type: Literal["encode"]
    spec: EncodeJobSpec


def check(session: Session, spec: EncodeJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    check_model(session, spec.model, sub)


def plan(session: Session, job: JobRow, spec: EncodeJobSpec) -> list[JobRow]:
    return []


def shard_slice(documents: int, shard: int, shards: int) -> slice:
    """The rows of shard ``shard`` of ``shards`` over ``documents`` (sizes differ by at most 1)."""
    size = math.ceil(documents / shards)
    return slice(min(shard * size, documents), min((shard + 1) * size, documents))


def run(ctx: JobContext, spec: EncodeJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec, spec.precision)
    ctx.progress(0.05, stage="loaded model", force=True)
    doc_ids = list(ds.corpus)[shard_slice(len(ds.corpus), spec.shard, spec.shards)]
    stats = cache_of(ctx).fill(
        cache_key(embedder, "document"),
        [ds.corpus[d].full_text for d in doc_ids],
        lambda texts: embedder.encode(texts, "document"),
        spec.chunk_size,
        ctx.stage("encode_shard", 0.05, 0.95),
        side="document",
    )
    ctx.log(f"shard {spec.shard}/{spec.shards}: {stats.misses} encoded, {stats.hits} cached")
    return {
        "documents": len(doc_ids),
        "encoded": stats.misses,
        "cached": stats.hits,
        "precision": getattr(embedder, "precision", "fp32"),
    }


Spec, Request = EncodeJobSpec, EncodeJob  # the names every kind module has

"""export: a dataset's corpus vectors, from a (fine-tuned) model or a stored index (a NUDGE
index holds tuned vectors), as Parquet (id, vector, text hash) in the job's artifacts, and
optionally pushed to a pgvector table with an HNSW index in the deployment's own Postgres."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import Field
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.evaluation.evaluator import encode_cached
from core.export import parquet, pgvector
from core.indexing.faiss_index import VectorIndex
from core.jobs.common import (
    ModelOrIndex,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_index,
    check_model,
    dataset_of,
    embedder_for,
)
from core.jobs.context import JobContext
from core.store import repos
from core.store.tables import IndexRow, JobRow

TYPE = "export"
QUEUE = "cpu"
PARQUET = "vectors.parquet"  # in the job's artifacts
TABLE_PREFIX = "vec_"  # pushed tables never share a name with EmbedTune's own
Table = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")]


class ExportJobSpec(ModelOrIndex):
    table: Table | None = Field(
        None, description="Also push to the pgvector table 'vec_<table>' of this deployment."
    )


class ExportJob(SpecModel):
    type: Literal["export"]
    spec: ExportJobSpec


def check(session: Session, spec: ExportJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    if spec.model is not None:
        check_model(session, spec.model, sub)
    else:
        check_index(session, spec.index_id or "", spec.dataset_id, sub)
    if spec.table is not None:
        url = session.get_bind().url.render_as_string(hide_password=False)
        if not pgvector.has_pgvector(url):
            msg = "this deployment's Postgres has no pgvector extension"
            raise InvalidInput(msg, code="no_pgvector", param="table")


def plan(session: Session, job: JobRow, spec: ExportJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: ExportJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    ctx.progress(0.05, stage="loading", force=True)
    if spec.index_id is not None:
        with ctx.factory() as session:
            row = repos.get_or_404(session, IndexRow, spec.index_id, "index")
        index = VectorIndex.load(row.path, use_gpu=False)
        ids, vectors = index.ids, index.reconstruct_all()
    else:
        ids = list(ds.corpus)
        vectors, _ = encode_cached(
            embedder_for(ctx, spec.model or "", spec),
            [ds.corpus[d].full_text for d in ids],
            "document",
            cache_of(ctx),
            ctx.stage("encode_corpus", 0.05, 0.75),
            out=lambda n, dim: np.lib.format.open_memmap(
                ctx.artifacts / "vectors.npy", "w+", np.float32, (n, dim)
            ),
        )
    hashes = [hashlib.sha1(ds.corpus[d].full_text.encode("utf-8")).hexdigest() for d in ids]
    path = ctx.artifacts / PARQUET
    parquet.write_vectors(path, ids, vectors, hashes)
    dim = int(vectors.shape[1])
    del vectors
    (ctx.artifacts / "vectors.npy").unlink(missing_ok=True)
    ctx.progress(0.85, stage="parquet written", force=True)
    table = f"{TABLE_PREFIX}{spec.table}" if spec.table else None
    if table is not None:
        pgvector.push(ctx.settings.db_url, table, path)
        ctx.log(f"{len(ids)} vectors in pgvector table '{table}' (HNSW, inner product)")
    return {"rows": len(ids), "dim": dim, "parquet": PARQUET, "table": table}


Spec, Request = ExportJobSpec, ExportJob  # the names every kind module has

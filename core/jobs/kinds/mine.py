"""mine: find hard negatives for a split's queries; the result is a new dataset."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

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
    fields_of,
    reranker_of,
    stages,
)
from core.jobs.context import JobContext
from core.mining import MiningSpec
from core.names import Name
from core.reranking.mining_filter import OVERSAMPLE, filter_with_reranker
from core.services import datasets as dataset_catalog
from core.store import repos
from core.store.db import transaction
from core.store.tables import JobRow

TYPE = "mine"
QUEUE = "cpu"
MiningOptions = fields_of(MiningSpec, exclude=("split", "index"), name="MiningOptions")
SPANS = {
    "encode_corpus": (0.05, 0.6),
    "encode_queries": (0.65, 0.1),
    "index": (0.75, 0.05),
    "mine": (0.8, 0.15),
}


class MineJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    split: Name = "train"
    options: MiningOptions = Field(default_factory=lambda: MiningOptions())
    reranker: ModelRef | None = Field(
        None,
        description="Positive-aware mining: also drop negatives this reranker scores close to "
        "or above the query's positives (twice the negatives are mined, then filtered).",
    )
    rerank_margin: float = Field(0.05, ge=0, lt=1, description="Relative to the positive.")
    precision: Literal["fp32", "int8", "fp16", "bf16"] = Field(
        "fp32",
        description="int8: candidates mined with the model's int8 transformer (ONNX Runtime), "
        "once a quantize job measured its loss within the limits. fp16/bf16: on a CUDA GPU, "
        "else fp32 with an event saying why.",
    )


class MineJob(SpecModel):
    type: Literal["mine"]
    spec: MineJobSpec


def mining_spec(spec: MineJobSpec) -> MiningSpec:
    """The domain spec; values out of range raise ``InvalidInput``. With a reranker, more
    negatives are mined (``OVERSAMPLE`` per kept one, within the window) for it to filter."""
    domain = MiningSpec(**spec.options.model_dump(), split=spec.split)
    if spec.reranker is None:
        return domain
    wanted = min(domain.num_negatives * OVERSAMPLE, domain.range_max - domain.range_min)
    return replace(domain, num_negatives=wanted)


def check(session: Session, spec: MineJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.split)
    check_model(session, spec.model, sub)
    if spec.reranker is not None:
        check_model(session, spec.reranker, sub)
    mining_spec(spec)


def plan(session: Session, job: JobRow, spec: MineJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: MineJobSpec) -> dict[str, Any]:
    from core.mining import mine_negatives

    with ctx.factory() as session:
        done = repos.dataset_from_job(session, job_id=ctx.job_id)
    if done is not None:  # a redelivered job whose dataset was already stored
        return {"dataset_id": done.id}
    ds = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec, spec.precision)
    ctx.progress(0.05, stage="loaded model", force=True)
    mined, report = mine_negatives(
        ds,
        embedder,
        mining_spec(spec),
        cache=cache_of(ctx),
        progress=stages(ctx, SPANS),
        should_cancel=ctx.should_cancel,
    )
    figures = {**report.as_dict(), "precision": getattr(embedder, "precision", "fp32")}
    (ctx.artifacts / "mining_report.json").write_text(json.dumps(figures, indent=1))
    ctx.log(f"mined {report.negatives} negatives for {report.queries} queries")
    filtered = None
    if spec.reranker is not None:
        mined, filtered = filter_with_reranker(
            mined,
            spec.split,
            reranker_of(ctx, spec.reranker),
            margin=spec.rerank_margin,
            keep=spec.options.num_negatives,
            cache=cache_of(ctx),
        )
        ctx.log(f"the reranker dropped {filtered.dropped} of {filtered.scored} negatives")
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
        "negatives": filtered.kept if filtered else report.negatives,
        "queries": report.queries,
        "queries_short": report.queries_short,
        "removed": report.removed,
        "precision": getattr(embedder, "precision", "fp32"),
        **({"reranker_filter": filtered.as_dict()} if filtered else {}),
        # For a person to check: negatives scored closest to a positive (correct the wrong
        # ones with POST /v1/datasets/{dataset_id}/corrections).
        "review": figures["review"],
    }


Spec, Request = MineJobSpec, MineJob  # the names every kind module has

"""rerank_finetune: train a cross-encoder reranker into a new model version (kind "reranker")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.jobs.common import (
    Id,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_model,
    fields_of,
    trusted_path,
)
from core.jobs.context import JobContext
from core.jobs.kinds.finetune import (
    DATA_CHECKS,
    DataChecks,
    DbReporter,
    check_data,
    store_model,
    training_data,
)
from core.names import Name
from core.reranking.spec import RerankSpec
from core.services.models import model_location
from core.store.tables import JobRow

TYPE = "rerank_finetune"
QUEUE = "gpu"
RerankParams = fields_of(
    RerankSpec, exclude=("method", "base_model", "teacher_model"), name="RerankParams"
)


class RerankJobSpec(SpecModel):
    dataset_id: Id
    base_model: ModelRef = Field(description="A reranker checkpoint or an encoder to start from.")
    method: Literal["full", "lora"] = "full"
    first_stage: ModelRef | None = Field(
        None,
        description="The embedder that mines negatives and retrieves validation candidates; "
        "None: base_model when it is an encoder, else all-MiniLM-L6-v2.",
    )
    teacher_model: ModelRef | None = Field(
        None, description="margin_mse: a bi-encoder whose scores are the teacher labels."
    )
    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    held_out_splits: list[Name] = Field(default_factory=lambda: ["test"], max_length=16)
    params: RerankParams = Field(default_factory=lambda: RerankParams())
    data_checks: DataChecks = DATA_CHECKS


class RerankJob(SpecModel):
    type: Literal["rerank_finetune"]
    spec: RerankJobSpec


def rerank_spec(spec: RerankJobSpec, base_model: str, teacher: str | None) -> RerankSpec:
    """The domain spec; values out of range raise ``InvalidInput``."""
    params = spec.params.model_dump()
    return RerankSpec(**params, method=spec.method, base_model=base_model, teacher_model=teacher)


def check(session: Session, spec: RerankJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.val_split)
    check_data(session, spec)
    if spec.first_stage is not None:
        check_model(session, spec.first_stage, sub)
    teacher = check_model(session, spec.teacher_model, sub) if spec.teacher_model else None
    rerank_spec(spec, check_model(session, spec.base_model, sub), teacher)


def plan(session: Session, job: JobRow, spec: RerankJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: RerankJobSpec) -> dict[str, Any]:
    from core.reranking.finetune import run_rerank_finetune

    with ctx.factory() as session:
        base, first, teacher = (
            model_location(session, ref) if ref else None
            for ref in (spec.base_model, spec.first_stage, spec.teacher_model)
        )
    assert base is not None
    domain = rerank_spec(spec, base, teacher)
    ds, val_split = training_data(ctx, spec, domain.seed)
    ctx.progress(0.02, stage="preparing", force=True)
    result = run_rerank_finetune(
        domain,
        ds,
        ctx.artifacts / "model",
        train_split=spec.train_split,
        val_split=val_split,
        first_stage=first,
        reporter=DbReporter(ctx),
        should_cancel=ctx.should_cancel,
        resume=True,
        models_dir=ctx.settings.models_dir,
        allow_paths=trusted_path,
        cache=cache_of(ctx),
    )
    fusion = {k: v for k, v in result.fusion.items() if k != "curve"}
    metrics = {"before": result.metrics_before, "after": result.metrics_after, "fusion": fusion}
    model_id = store_model(ctx, spec, kind="reranker", path=str(result.model_dir), metrics=metrics)
    return {"model_id": model_id, "metrics": metrics, "train_seconds": result.train_seconds}


Spec, Request = RerankJobSpec, RerankJob  # the names every kind module has

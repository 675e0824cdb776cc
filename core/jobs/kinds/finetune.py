"""finetune: train a model (full, LoRA, a query adapter or ColBERT) into a new model version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.datasets.split import hold_out, split_by_query
from core.jobs.common import (
    Id,
    ModelRef,
    SpecModel,
    Submission,
    check_dataset,
    check_model,
    dataset_of,
    fields_of,
    trusted_path,
)
from core.jobs.context import JobContext
from core.models.cache import EmbeddingCache
from core.models.decoder import default_method
from core.names import Name
from core.services.models import model_location
from core.store import repos
from core.store.db import transaction
from core.store.tables import JobRow, ModelRow
from core.training.spec import FinetuneSpec

TYPE = "finetune"
QUEUE = "gpu"
FinetuneParams = fields_of(FinetuneSpec, exclude=("method", "base_model"), name="FinetuneParams")


class FinetuneJobSpec(SpecModel):
    dataset_id: Id
    base_model: ModelRef
    method: Literal["full", "lora", "adapter", "colbert"] | None = Field(
        None, description="None: lora for an LLM decoder base model, full otherwise."
    )
    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    held_out_splits: list[Name] = Field(
        default_factory=lambda: ["test"],
        max_length=16,
        description="Splits kept for evaluation: a training query they also judge is not "
        "trained on (a compare job names its test split).",
    )
    params: FinetuneParams = Field(default_factory=lambda: FinetuneParams())


class FinetuneJob(SpecModel):
    type: Literal["finetune"]
    spec: FinetuneJobSpec


def finetune_spec(
    spec: FinetuneJobSpec, base_model: str, models_dir: Path | None = None
) -> FinetuneSpec:
    """The domain spec; values out of range raise ``InvalidInput``."""
    params = spec.params.model_dump()
    method = spec.method or default_method(base_model, models_dir)
    return FinetuneSpec(**params, method=method, base_model=base_model)


def check(session: Session, spec: FinetuneJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.val_split)
    finetune_spec(spec, check_model(session, spec.base_model, sub), sub.models_dir)


def plan(session: Session, job: JobRow, spec: FinetuneJobSpec) -> list[JobRow]:
    return []


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


def run(ctx: JobContext, spec: FinetuneJobSpec) -> dict[str, Any]:
    from core.training import run_finetune

    ds = dataset_of(ctx, spec.dataset_id)
    for split in spec.held_out_splits:
        if split in ds.qrels and split != spec.train_split:
            ds, overlap = hold_out(ds, spec.train_split, split)
            if overlap:
                ctx.log(
                    f"{overlap} queries of '{split}' are also in '{spec.train_split}': "
                    "not trained on"
                )
    with ctx.factory() as session:
        base = model_location(session, spec.base_model)
    domain = finetune_spec(spec, base, ctx.settings.models_dir)
    val_split = spec.val_split
    if val_split is None:  # held out as the CLI does: by query, with the spec's seed
        names = (spec.train_split, "val")
        ds = split_by_query(
            ds,
            source=spec.train_split,
            val_fraction=spec.val_fraction,
            seed=domain.seed,
            names=names,
        )
        val_split = "val"
    ctx.progress(0.02, stage="preparing", force=True)
    result = run_finetune(
        domain,
        ds,
        ctx.artifacts / "model",
        train_split=spec.train_split,
        val_split=val_split,
        reporter=DbReporter(ctx),
        should_cancel=ctx.should_cancel,
        resume=True,
        models_dir=ctx.settings.models_dir,
        allow_paths=trusted_path(base),
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
            method=domain.method,
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


Spec, Request = FinetuneJobSpec, FinetuneJob  # the names every kind module has

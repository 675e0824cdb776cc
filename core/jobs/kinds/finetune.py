"""finetune: train a model (full, LoRA, a query adapter or ColBERT) into a new model version."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.datasets.checks import drop_fatal, fatal_in_stats, require_trainable
from core.datasets.model import RetrievalDataset
from core.datasets.split import hold_out, split_by_query
from core.jobs.common import (
    Id,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_model,
    dataset_of,
    fields_of,
    reranker_of,
    trusted_path,
)
from core.jobs.context import JobContext
from core.models.decoder import default_method
from core.names import Name
from core.services.models import model_location
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, JobRow, ModelRow
from core.training.hooks import Teacher
from core.training.spec import FinetuneSpec

TYPE = "finetune"
QUEUE = "gpu"
DataChecks = Literal["refuse", "drop"]
DATA_CHECKS: Any = Field(
    "refuse",
    description="A fatal data check (docs/quality-loop.md) refuses the job with code "
    "data_check_failed and the ids, or with 'drop' removes what it names from training.",
)
FinetuneParams = fields_of(FinetuneSpec, exclude=("method", "base_model"), name="FinetuneParams")


class TrainingSplits(SpecModel):
    """The splits of a job that trains or chooses on validation (finetune, search, merge)."""

    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    held_out_splits: list[Name] = Field(
        default_factory=lambda: ["test"],
        max_length=16,
        description="Splits kept for evaluation: a training query they also judge is not "
        "trained on (a compare job names its test split); their judgments are never read.",
    )
    data_checks: DataChecks = DATA_CHECKS


class FinetuneJobSpec(TrainingSplits):
    dataset_id: Id
    base_model: ModelRef
    method: Literal["full", "lora", "adapter", "colbert"] | None = Field(
        None, description="None: lora for an LLM decoder base model, full otherwise."
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
    check_data(session, spec)  # the request is valid: now its data
    if spec.params.teacher_reranker is not None:
        check_model(session, spec.params.teacher_reranker, sub)


def plan(session: Session, job: JobRow, spec: FinetuneJobSpec) -> list[JobRow]:
    return []


def evaluated_splits(spec: Any) -> list[str]:
    """The splits a training job evaluates on: none of their queries may be trained on."""
    return [*spec.held_out_splits, *([spec.val_split] if spec.val_split else [])]


def check_data(session: Session, spec: Any) -> None:
    """Refuse at submission what the dataset's stored data checks already show fatal for
    these splits (``data_check_failed``); the job checks the data it loads again."""
    row = session.get(DatasetRow, spec.dataset_id)
    if row is not None and spec.data_checks == "refuse":
        checks = row.stats.get("checks", {})
        fatal_in_stats(checks, train_split=spec.train_split, held_out=evaluated_splits(spec))


# Where each stage of ``run_finetune`` sits in the job's progress: mining hard negatives and
# the "before" validation first (cached encodes after mining), then training.
SPANS = {
    "mine: encode_corpus": (0.02, 0.06),
    "mine: encode_queries": (0.08, 0.01),
    "mine: index": (0.09, 0.01),
    "mine: mine": (0.10, 0.02),
    "validate before: encode_corpus": (0.12, 0.01),
    "validate before: encode_queries": (0.13, 0.01),
    "validate before: index": (0.14, 0.01),
    "train": (0.15, 0.8),
}


class DbReporter:
    """Feeds a fine-tune's progress (every step, throttled), losses and evaluations into the
    job's rows."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        self.ctx.metrics(step, {"loss": loss, "learning_rate": lr})

    def on_progress(self, stage: str, done: int, total: int) -> None:
        self.ctx.step(stage, *SPANS.get(stage, SPANS["train"]), done, total)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.ctx.metrics(step, {f"eval_{k}": v for k, v in metrics.items()})

    def on_event(self, message: str) -> None:
        self.ctx.log(message)


def training_data(ctx: JobContext, spec: Any, seed: int) -> tuple[RetrievalDataset, str]:
    """The dataset of a training job (``FinetuneJobSpec`` or a spec with the same split
    fields) without the queries its held-out splits judge, and its validation split: the
    one named, else ``val`` held out of the train queries as the CLI does (by query, seeded)."""
    ds = dataset_of(ctx, spec.dataset_id)
    for split in spec.held_out_splits:
        if split in ds.qrels and split != spec.train_split:
            ds, overlap = hold_out(ds, spec.train_split, split)
            if overlap:
                ctx.log(
                    f"{overlap} queries of '{split}' are also in '{spec.train_split}': "
                    "not trained on"
                )
    ds = checked(ctx, ds, spec, evaluated_splits(spec))
    if spec.val_split is not None:
        return ds, spec.val_split
    names = (spec.train_split, "val")
    ds = split_by_query(
        ds, source=spec.train_split, val_fraction=spec.val_fraction, seed=seed, names=names
    )
    return checked(ctx, ds, spec, ["val"]), "val"  # train queries with a val query's text


def checked(
    ctx: JobContext, ds: RetrievalDataset, spec: Any, held_out: list[str]
) -> RetrievalDataset:
    """``ds`` past the fatal data checks for training ``spec.train_split`` and evaluating
    on ``held_out``: refused (``data_check_failed``), or with ``data_checks="drop"``
    without the records they name (logged)."""
    splits = {"train_split": spec.train_split, "held_out": held_out}
    if spec.data_checks == "refuse":
        require_trainable(ds, **splits)
        return ds
    ds, dropped = drop_fatal(ds, **splits)
    for name, count in dropped.items():
        ctx.log(f"data check {name}: {count} record(s) dropped from training")
    return ds


def store_model(
    ctx: JobContext,
    spec: Any,
    *,
    kind: str,
    path: str,
    metrics: dict,
    method: str | None = None,
) -> str:
    """Upsert the model version the job made (by job id) and return its id; ``method``
    overrides ``spec.method`` (a fine-tune's method chosen by its base model)."""
    with transaction(ctx.factory) as session:
        row = repos.upsert_by_job(
            session,
            ModelRow,
            job_id=ctx.job_id,
            project_id=repos.job_project(session, job_id=ctx.job_id),
            reference="",
            kind=kind,
            method=method or spec.method,
            base_model=spec.base_model,
            path=path,
            dataset_id=spec.dataset_id,
            metrics=metrics,
        )
        row.reference = row.id
        return row.id


def run(ctx: JobContext, spec: FinetuneJobSpec) -> dict[str, Any]:
    from core.training import run_finetune

    with ctx.factory() as session:
        base = model_location(session, spec.base_model)
    domain = finetune_spec(spec, base, ctx.settings.models_dir)
    ds, val_split = training_data(ctx, spec, domain.seed)
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
        cache=cache_of(ctx),
        teacher=_teacher(ctx, ds, domain),
    )
    metrics = {"before": result.metrics_before, "after": result.metrics_after}
    model_id = store_model(
        ctx,
        spec,
        kind="finetuned",
        path=str(result.model_dir),
        metrics=metrics,
        method=domain.method,
    )
    return {
        "model_id": model_id,
        "metrics": metrics,
        "train_seconds": result.train_seconds,
        "samples_per_second": result.samples_per_second,
        "rounds": result.rounds,  # per round: validation metrics, time, what re-mining changed
    }


def _teacher(ctx: JobContext, ds: RetrievalDataset, spec: FinetuneSpec) -> Teacher | None:
    """The teacher reranker's scores for distillation, each pair scored once (cached)."""
    if spec.teacher_reranker is None:
        return None
    from core.reranking.teachers import reranker_teacher

    reranker = reranker_of(ctx, spec.teacher_reranker)
    return reranker_teacher(ds, reranker, cache_of(ctx))


Spec, Request = FinetuneJobSpec, FinetuneJob  # the names every kind module has

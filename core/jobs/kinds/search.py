"""search: a bounded recipe search (Optuna) for a fine-tune on the validation split; the best
trial's model becomes a model version and its recipe is the result, ready to reuse."""

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
    trusted_path,
)
from core.jobs.context import JobContext
from core.jobs.kinds.finetune import (
    DbReporter,
    FinetuneParams,
    TrainingSplits,
    check_data,
    finetune_spec,
    store_model,
    training_data,
)
from core.services.models import model_location
from core.store.tables import JobRow
from core.training.recipe_search import SEARCHABLE, SearchSpec

TYPE = "search"
QUEUE = "gpu"
Searchable = Literal["learning_rate", "epochs", "scale", "num_hard_negatives", "batch_size"]


class SearchBudget(SpecModel):
    trials: int = Field(10, ge=1, le=200)
    minutes: float | None = Field(
        None, gt=0, le=10080, description="No trial starts after this; a started one finishes."
    )


class SearchJobSpec(TrainingSplits):
    dataset_id: Id
    base_model: ModelRef
    method: Literal["full", "lora", "adapter"] | None = Field(
        None, description="None: lora for an LLM decoder base model, full otherwise."
    )
    budget: SearchBudget = Field(default_factory=lambda: SearchBudget())
    search: list[Searchable] = Field(default_factory=lambda: list(SEARCHABLE), min_length=1)
    params: FinetuneParams = Field(
        default_factory=lambda: FinetuneParams(),
        description="The fixed settings, and the start values of the searched ones (trial 0).",
    )


class SearchJob(SpecModel):
    type: Literal["search"]
    spec: SearchJobSpec


def search_spec(spec: SearchJobSpec) -> SearchSpec:
    return SearchSpec(
        trials=spec.budget.trials, minutes=spec.budget.minutes, params=tuple(spec.search)
    )


def check(session: Session, spec: SearchJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.val_split)
    finetune_spec(spec, check_model(session, spec.base_model, sub), sub.models_dir)  # type: ignore[arg-type]
    search_spec(spec)
    check_data(session, spec)  # the request is valid: now its data


def plan(session: Session, job: JobRow, spec: SearchJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: SearchJobSpec) -> dict[str, Any]:
    from core.training.recipe_search import search_recipe

    with ctx.factory() as session:
        base = model_location(session, spec.base_model)
    domain = finetune_spec(spec, base, ctx.settings.models_dir)  # type: ignore[arg-type]
    ds, val_split = training_data(ctx, spec, domain.seed)
    ctx.progress(0.02, stage="searching", force=True)
    result = search_recipe(
        domain,
        ds,
        ctx.artifacts,
        train_split=spec.train_split,
        val_split=val_split,
        spec=search_spec(spec),
        reporter=DbReporter(ctx),
        should_cancel=ctx.should_cancel,
        models_dir=ctx.settings.models_dir,
        allow_paths=trusted_path(base),
        cache=cache_of(ctx),
    )
    params = {**spec.params.model_dump(mode="json"), **result.params}
    metrics = {"after": result.metrics, "search": {"default": result.default_value}}
    model_id = store_model(
        ctx,
        spec,
        kind="finetuned",
        path=str(result.model_dir),
        metrics=metrics,
        method=domain.method,
    )
    trials = [{k: t[k] for k in ("number", "params", "value", "seconds")} for t in result.trials]
    return {
        "model_id": model_id,
        "metrics": metrics,
        "params": params,  # the best recipe as finetune `params`: post it to reuse it
        "value": result.value,
        "metric": result.metric,
        "trials": trials,
        "seconds": result.seconds,
    }


Spec, Request = SearchJobSpec, SearchJob  # the names every kind module has

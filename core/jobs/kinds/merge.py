"""merge: the weighted average of a base model and models tuned from it (LM-Cocktail), the
weights chosen on the validation split and a forgetting set, into a new model version."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator
from sqlalchemy.orm import Session

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
    check_source_job,
    dataset_of,
    embedder_for,
    model_of_job,
)
from core.jobs.context import JobContext
from core.jobs.kinds.finetune import TrainingSplits, check_data, store_model, training_data
from core.names import Name
from core.services.models import model_location
from core.store.tables import JobRow, ModelRow
from core.training.finetune import MERGED
from core.training.merge import MergeSpec

TYPE = "merge"
QUEUE = "gpu"  # every candidate weighting is encoded and scored


class MergeJobSpec(TrainingSplits):
    dataset_id: Id = Field(description="The dataset the models were tuned on (validation).")
    base_model: ModelRef
    models: list[ModelRef] = Field(default_factory=list, max_length=4)
    models_from_jobs: list[Id] = Field(
        default_factory=list,
        max_length=4,
        description="Models that finetune, search or merge jobs produce; this job waits.",
    )
    forgetting_dataset_id: Id | None = Field(
        None, description="A dataset not trained on: the merge keeps its score near the base's."
    )
    forgetting_split: Name = Field("train", description="Not the split reports score.")
    weights: list[Annotated[float, Field(ge=0, le=1)]] | None = Field(
        None, max_length=5, description="Fixed weights, base first; None: searched."
    )
    grid_step: float = Field(0.1, ge=0.01, le=1)
    trials: int = Field(24, ge=1, le=1000)
    max_forgetting: float = Field(0.005, ge=0, le=1)

    @model_validator(mode="after")
    def _some_model(self) -> MergeJobSpec:
        if not self.models and not self.models_from_jobs:
            raise ValueError("name the tuned models: models or models_from_jobs")
        if len(self.models) + len(self.models_from_jobs) > 4:
            raise ValueError("merge at most 4 tuned models")
        return self


class MergeJob(SpecModel):
    type: Literal["merge"]
    spec: MergeJobSpec


def merge_spec(spec: MergeJobSpec) -> MergeSpec:
    weights = tuple(spec.weights) if spec.weights is not None else None
    return MergeSpec(
        weights=weights,
        grid_step=spec.grid_step,
        trials=spec.trials,
        max_forgetting=spec.max_forgetting,
    )


def check(session: Session, spec: MergeJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.val_split)
    if spec.forgetting_dataset_id is not None:
        check_dataset(session, spec.forgetting_dataset_id, sub, spec.forgetting_split)
    check_model(session, spec.base_model, sub)
    for ref in spec.models:
        check_model(session, ref, sub)
    for job_id in spec.models_from_jobs:
        check_source_job(session, job_id, sub, param="models_from_jobs")
    merge_spec(spec)
    check_data(session, spec)  # the request is valid: now its data


def plan(session: Session, job: JobRow, spec: MergeJobSpec) -> list[JobRow]:
    for job_id in spec.models_from_jobs:
        lifecycle.depend(session, job=job, on=job_id, required=True)
    return []


def run(ctx: JobContext, spec: MergeJobSpec) -> dict[str, Any]:
    from core.training.merge import run_merge

    made = [model_of_job(ctx, j, param="models_from_jobs") for j in spec.models_from_jobs]
    members = [*spec.models, *made]
    with ctx.factory() as session:
        locations = [_merge_input(model_location(session, ref)) for ref in members]
        method = _method(session, members[0])
    options = EncodingOptions()
    base = embedder_for(ctx, spec.base_model, options)
    tuned = [embedder_for(ctx, location, options) for location in locations]
    ds, val_split = training_data(ctx, spec, seed=0)
    forgetting = None
    if spec.forgetting_dataset_id is not None:
        forgetting = (dataset_of(ctx, spec.forgetting_dataset_id), spec.forgetting_split)
    ctx.progress(0.05, stage="search weights", force=True)
    result = run_merge(
        base,
        tuned,
        target=(ds, val_split),
        forgetting=forgetting,
        output_dir=ctx.artifacts / "model",
        spec=merge_spec(spec),
        cache=cache_of(ctx),
        on_event=ctx.log,
    )
    merge = {
        "weights": list(result.weights),
        "members": [spec.base_model, *members],
        "search": result.search,
        "val": result.chosen.target,
        "forgetting": result.chosen.forgetting,
        "base_val": result.base.target,
        "base_forgetting": result.base.forgetting,
        "candidates": len(result.candidates),
        "corpus_encodes": result.corpus_encodes,
        "seconds": result.seconds,
    }
    metrics = {"after": {result.metric: result.chosen.target}, "merge": merge}
    path = str(result.model_dir)
    model_id = store_model(ctx, spec, kind="finetuned", path=path, metrics=metrics, method=method)
    return {"model_id": model_id, "metrics": metrics, "merge": merge}


def _merge_input(location: str) -> str:
    """A LoRA model merges through its merged weights (one architecture with the base)."""
    merged = Path(location) / MERGED
    return str(merged) if merged.is_dir() else location


def _method(session: Session, ref: str) -> str:
    """A merge of query adapters is a query adapter; any other merge is a full model."""
    row = session.get(ModelRow, ref)
    return "adapter" if row is not None and row.method == "adapter" else "full"


Spec, Request = MergeJobSpec, MergeJob  # the names every kind module has

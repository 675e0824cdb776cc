"""quantize: export a model's transformer at int8 and measure what it costs on a dataset.

The figures (mean and minimum cosine of int8 to fp32 vectors on a corpus sample, nDCG@10 of
each on a judged split) are stored beside the export and shown by ``GET /v1/models/{id}``;
int8 mining and serving read them and refuse a model without them or past the limits
(``EMBEDTUNE_INT8_MAX_NDCG_DROP``, ``EMBEDTUNE_INT8_MIN_MEAN_COSINE``). A model past the
limits ends the job ``failed`` with code ``int8_too_lossy`` and the figures.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, evaluate
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
from core.models.embedder import Embedder
from core.names import Name
from core.serving.quantize import Thresholds, check_int8, measure_int8, save_quality
from core.serving.runtime import with_runtime
from core.store.tables import JobRow

TYPE = "quantize"
QUEUE = "cpu"
SPLITS = ("val", "test", "train")  # the judged split measured when none is named


class QuantizeJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    split: Name | None = Field(
        None, description="The judged split nDCG@10 is measured on; None: val, test or train."
    )


class QuantizeJob(SpecModel):
    type: Literal["quantize"]
    spec: QuantizeJobSpec


def check(session: Session, spec: QuantizeJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub, spec.split)
    check_model(session, spec.model, sub)


def plan(session: Session, job: JobRow, spec: QuantizeJobSpec) -> list[JobRow]:
    return []


def run(ctx: JobContext, spec: QuantizeJobSpec) -> dict[str, Any]:
    ds = dataset_of(ctx, spec.dataset_id)
    split = spec.split or next((s for s in SPLITS if ds.qrels.get(s)), SPLITS[0])
    fp32 = embedder_for(ctx, spec.model, spec)
    if not isinstance(fp32, Embedder):
        raise InvalidInput(
            f"'{spec.model[:80]}' is a late-interaction model: no int8 export",
            code="int8_unsupported",
            param="model",
        )
    try:
        int8 = with_runtime(fp32, ctx.settings.onnx_dir, "int8")
    except ValueError as exc:  # a pipeline ONNX Runtime cannot reproduce (a query adapter)
        raise InvalidInput(str(exc), code="int8_unsupported", param="model") from exc
    ctx.progress(0.1, stage="exported int8", force=True)
    cache, settings = cache_of(ctx), ctx.settings
    eval_spec = EvalSpec(split=split, count_truncated=False)
    quality = measure_int8(
        ds,
        fp32,
        int8,
        split,
        Thresholds(settings.int8_max_ndcg_drop, settings.int8_min_mean_cosine),
        evaluate_fp32=lambda d, e, _: evaluate(d, e, eval_spec, cache=cache).metrics["ndcg@10"],
    )
    save_quality(settings.onnx_dir, quality)
    ctx.log(quality.describe())
    check_int8(quality, spec.model)  # past the limits: the job fails with the figures
    return {"model": spec.model, "quantization": quality.to_dict()}


Spec, Request = QuantizeJobSpec, QuantizeJob  # the names every kind module has

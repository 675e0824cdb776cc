"""What every job kind shares: the spec base and field types, what submission checks, and
what a running job loads (its dataset, an embedder for a model reference)."""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import MISSING, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator
from sqlalchemy.orm import Session

from core.datasets.model import RetrievalDataset
from core.errors import Conflict, InvalidInput
from core.jobs.context import JobContext
from core.models.cache import EmbeddingCache
from core.models.embedder import HALF_DTYPES, Embedder, Half, half_unavailable
from core.models.remote import is_remote, remote_name
from core.models.resolve import check_reference
from core.safe_values import SafeText
from core.services import datasets as dataset_catalog
from core.services import models as models_service
from core.services.models import model_location
from core.serving.quantize import check_int8, load_quality
from core.serving.runtime import Precision, with_runtime
from core.store import repos
from core.store.tables import DEFAULT_PROJECT, DatasetRow, IndexRow, JobRow

if TYPE_CHECKING:
    from core.reranking.reranker import Reranker

Id = Annotated[SafeText, Field(min_length=1, max_length=40)]
ModelRef = Annotated[SafeText, Field(min_length=1, max_length=300)]
Instruction = Annotated[SafeText, Field(max_length=500)]
EncodePrecision = Annotated[
    Literal["fp32", "fp16", "bf16"],
    Field(
        description="fp16/bf16: encode with half-precision matrix products on a CUDA GPU (bf16 "
        "where the GPU supports it); a worker that cannot encodes at fp32, says why in an "
        "event, and the result's precision says fp32."
    ),
]


class SpecModel(BaseModel):
    """A job spec: validated at submission, stored as JSON, read back by the worker."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def fields_of(domain: type, *, exclude: tuple[str, ...], name: str) -> type[SpecModel]:
    """A spec model with the fields, types and defaults of the dataclass ``domain`` (less
    ``exclude``): the domain spec stays the one definition of its fields and their defaults,
    and its ``__post_init__`` the one check of their ranges."""
    hints = typing.get_type_hints(domain)
    fields = {
        f.name: (hints[f.name], f.default if f.default is not MISSING else f.default_factory())
        for f in dataclasses.fields(domain)
        if f.name not in exclude
    }
    return create_model(name, __base__=SpecModel, __doc__=f"{domain.__name__} fields.", **fields)


class EncodingOptions(SpecModel):
    batch_size: int = Field(64, ge=1, le=4096)
    max_seq_length: int | None = Field(None, ge=8, le=8192)
    query_instruction: Instruction | None = None
    document_instruction: Instruction | None = None


class ModelOrIndex(EncodingOptions):
    """A job over a dataset's corpus vectors: encoded by ``model``, or read from the stored
    index ``index_id`` (e.g. NUDGE's tuned vectors); exactly one of the two."""

    dataset_id: Id
    model: ModelRef | None = Field(None, description="Encode the corpus with this model.")
    index_id: Id | None = Field(None, description="Or take the vectors of this stored index.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelOrIndex:
        if (self.model is None) == (self.index_id is None):
            raise ValueError("give exactly one of model and index_id")
        return self


@dataclass(frozen=True)
class Submission:
    """Who submits and what they may name: ids of ``project_id`` only; local model
    directories only with ``allow_paths`` (the local CLI, never the API)."""

    project_id: str = DEFAULT_PROJECT
    models_dir: Path | None = None
    allow_paths: bool = False


# submission checks -------------------------------------------------------------------------


def check_dataset(session: Session, dataset_id: str, sub: Submission, *splits: str | None) -> None:
    """The dataset exists in the project and has every split named."""
    row = repos.get_or_404(session, DatasetRow, dataset_id, "dataset", project_id=sub.project_id)
    have = row.stats.get("splits", {})
    for split in splits:
        if split is not None and split not in have:
            raise InvalidInput(
                f"dataset '{dataset_id}' has no split '{split}' (splits: "
                f"{', '.join(sorted(have)) or 'none'})",
                code="no_split",
                param="spec",
            )


def check_model(session: Session, ref: str, sub: Submission, *, remote: bool = False) -> str:
    """What ``ref`` loads: a tuned model's directory, or a reference that must resolve;
    ``remote`` also admits ``remote:<name>`` (jobs that only encode with it)."""
    if is_remote(ref):  # the operator's embeddings endpoint: it can be scored, not trained
        remote_name(ref)
        if not remote:
            raise InvalidInput(
                f"'{ref[:80]}' is a remote embeddings endpoint: eval and compare baselines only",
                code="remote_model",
                param="model",
            )
        return ref
    location = model_location(session, ref, project_id=sub.project_id)
    if location == ref:  # not a tuned model: a client reference that may not be a path
        check_reference(ref, models_dir=sub.models_dir, allow_paths=sub.allow_paths)
    return location


def check_index(session: Session, index_id: str, dataset_id: str, sub: Submission) -> IndexRow:
    """The stored index exists in the project and holds the dataset's corpus."""
    row = repos.get_or_404(session, IndexRow, index_id, "index", project_id=sub.project_id)
    if row.dataset_id != dataset_id:
        msg = f"index '{row.id}' holds dataset '{row.dataset_id}', not '{dataset_id}'"
        raise InvalidInput(msg, code="index_dataset_mismatch", param="index_id")
    return row


MODEL_JOBS = ("finetune", "search", "merge")  # job types whose result names a model_id


def check_source_job(session: Session, job_id: str, sub: Submission, *, param: str) -> None:
    """A job of the project that makes a model and has not failed or been cancelled."""
    source = repos.get_or_404(session, JobRow, job_id, "job", project_id=sub.project_id)
    if source.type not in MODEL_JOBS:
        raise InvalidInput(f"job '{source.id}' makes no model", param=param)
    if source.status in ("failed", "cancelled"):
        raise Conflict(
            f"job '{source.id}' {source.status}: there is no model to build on",
            code=f"source_job_{source.status}",
            param=param,
        )


def check_precision(ref: str, precision: str) -> None:
    """fp16/bf16 only for models EmbedTune runs: a remote endpoint encodes as it does."""
    if precision != "fp32" and is_remote(ref):
        raise InvalidInput(
            f"'{ref[:80]}' is a remote embeddings endpoint: it encodes at its own precision; "
            "leave precision at fp32",
            code="precision_unsupported",
            param="precision",
        )


# what a running job loads ------------------------------------------------------------------


def model_of_job(ctx: JobContext, job_id: str, *, param: str) -> str:
    """The model a source job this one waited for made (a job is enqueued only once the jobs
    it waits for have succeeded; this guards against a stray delivery)."""
    with ctx.factory() as session:
        job = repos.get_or_404(session, JobRow, job_id, "job")
    if job.status != "succeeded":
        raise Conflict(
            f"job '{job_id}' is {job.status}: there is no model to build on",
            code=f"source_job_{job.status}",
            param=param,
        )
    return job.result["model_id"]


def dataset_of(ctx: JobContext, dataset_id: str) -> RetrievalDataset:
    with ctx.factory() as session:
        row = repos.get_or_404(session, DatasetRow, dataset_id, "dataset")
    return dataset_catalog.load(row)


def embedder_for(
    ctx: JobContext, ref: str, options: EncodingOptions, precision: Precision | Half = "fp32"
) -> Embedder:
    """The model ``ref`` names (a tuned model id or a reference), with the job's options; on
    the CPU its transformer runs in ONNX Runtime where measured faster (``job_onnx``), or at
    int8 (``precision``: only a model whose int8 loss a quantize job measured within limits).
    fp16/bf16 where this worker can (``half_unavailable``), else fp32 and an event saying why."""
    with ctx.factory() as session:
        location = model_location(session, ref)
    embedder = models_service.embedder_for(
        ctx.settings,
        location,
        allow_paths=trusted_path(location),
        batch_size=options.batch_size,
        max_seq_length=options.max_seq_length,
        query_instruction=options.query_instruction,
        document_instruction=options.document_instruction,
    )
    if precision in HALF_DTYPES:
        reason = half_unavailable(embedder, precision)
        if reason is None:
            return replace(embedder, precision=precision)
        ctx.log(f"{precision} asked, encoding at fp32: {reason}", level="warning", asked=precision)
        precision = "fp32"
    if not isinstance(embedder, Embedder):  # remote and late-interaction models
        return embedder
    if precision == "int8":
        check_int8(load_quality(ctx.settings.onnx_dir, embedder.fingerprint), ref)
    elif not ctx.settings.job_onnx:
        return embedder
    try:
        return with_runtime(embedder, ctx.settings.onnx_dir, precision)
    except ValueError as exc:  # int8 of a pipeline ONNX Runtime cannot reproduce
        raise InvalidInput(str(exc), code="int8_unsupported", param="precision") from exc


def reranker_of(ctx: JobContext, ref: str) -> Reranker:
    """The reranker ``ref`` names (a tuned reranker id or a reference)."""
    with ctx.factory() as session:
        location = model_location(session, ref)
    return models_service.reranker_for(ctx.settings, location, allow_paths=trusted_path(location))


def trusted_path(location: str) -> bool:
    """Whether a job may load ``location`` as a directory: only absolute paths, which come
    from our own tables or the local CLI (the API refuses them). A relative reference is
    never looked up in the worker's working directory."""
    return Path(location).is_absolute()


def stages(ctx: JobContext, spans: dict[str, tuple[float, float]]):
    """A ``progress(stage, done, total)`` callback mapping named stages onto spans."""

    def progress(stage: str, done: int, total: int) -> None:
        ctx.stage(stage, *spans.get(stage, (0.0, 0.0)))(done, total)

    return progress


def cache_of(ctx: JobContext) -> EmbeddingCache:
    """The shared embedding cache, writing new shards in ``EMBEDTUNE_CACHE_DTYPE``; what it
    encodes adds to the job's tally (``ctx.encodes``)."""
    return EmbeddingCache(ctx.settings.cache_dir, dtype=ctx.settings.cache_dtype, tally=ctx.encodes)


def project_of(ctx: JobContext) -> str:
    """The project of the running job: the one rows it creates belong to."""
    with ctx.factory() as session:
        return repos.job_project(session, job_id=ctx.job_id)

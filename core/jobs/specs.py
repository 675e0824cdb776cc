"""What each job type takes: validated when submitted, stored as JSON, read back by the worker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.errors import InvalidInput

JobType = Literal["eval", "index", "mine", "finetune"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
QUEUE_OF: dict[str, str] = {"eval": "cpu", "index": "cpu", "mine": "cpu", "finetune": "gpu"}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncodingOptions(_Spec):
    batch_size: int = Field(64, ge=1, le=4096)
    max_seq_length: int | None = Field(None, ge=8, le=8192)
    query_instruction: str | None = Field(None, max_length=500)
    document_instruction: str | None = Field(None, max_length=500)


class EvalJobSpec(EncodingOptions):
    dataset_id: str
    model: str = Field(description="Base model reference or fine-tuned model id.")
    split: str = "test"
    index: Literal["flat", "ivf", "hnsw", "auto"] = "flat"


class IndexJobSpec(EncodingOptions):
    dataset_id: str
    model: str
    kind: Literal["flat", "ivf", "hnsw", "auto"] = "auto"


class MineJobSpec(EncodingOptions):
    dataset_id: str
    model: str
    split: str = "train"
    options: dict[str, Any] = Field(default_factory=dict, description="MiningSpec fields.")


class FinetuneJobSpec(_Spec):
    dataset_id: str
    base_model: str
    method: Literal["full", "lora", "adapter"] = "full"
    train_split: str = "train"
    val_split: str | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    params: dict[str, Any] = Field(default_factory=dict, description="FinetuneSpec fields.")


class EvalJob(_Spec):
    type: Literal["eval"]
    spec: EvalJobSpec


class IndexJob(_Spec):
    type: Literal["index"]
    spec: IndexJobSpec


class MineJob(_Spec):
    type: Literal["mine"]
    spec: MineJobSpec


class FinetuneJob(_Spec):
    type: Literal["finetune"]
    spec: FinetuneJobSpec


JobRequest = Annotated[EvalJob | IndexJob | MineJob | FinetuneJob, Field(discriminator="type")]
SPEC_OF: dict[str, type[_Spec]] = {
    "eval": EvalJobSpec,
    "index": IndexJobSpec,
    "mine": MineJobSpec,
    "finetune": FinetuneJobSpec,
}


def mining_spec(spec: MineJobSpec):  # -> core.mining.MiningSpec
    """The domain spec of a mine job; unknown or invalid options raise ``InvalidInput``."""
    from core.mining import MiningSpec

    known = set(MiningSpec.__dataclass_fields__) - {"split", "index"}
    if unknown := sorted(set(spec.options) - known):
        raise InvalidInput(f"unknown mining option '{unknown[0]}'", param=f"options.{unknown[0]}")
    try:
        return MiningSpec(**spec.options, split=spec.split)
    except TypeError as exc:
        raise InvalidInput(f"invalid mining options: {exc}", param="options") from None


def finetune_spec(spec: FinetuneJobSpec, base_model: str):  # -> core.training.FinetuneSpec
    """The domain spec of a finetune job; unknown or invalid params raise ``InvalidInput``."""
    from core.training import FinetuneSpec

    for key in ("method", "base_model"):
        if key in spec.params:
            raise InvalidInput(
                f"give '{key}' at the top of the spec, not in params", param=f"params.{key}"
            )
    return FinetuneSpec.from_dict({**spec.params, "method": spec.method, "base_model": base_model})

"""What each job type takes: validated when submitted, stored as JSON, read back by the worker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

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

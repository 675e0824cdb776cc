"""What each job type takes: validated when submitted, stored as JSON, read back by the worker."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from core.compare.methods import DEFAULT_METHODS, METHODS, CompareMethod
from core.errors import InvalidInput
from core.names import Name
from core.safe_values import SafeText

JobType = Literal["eval", "index", "mine", "finetune", "nudge", "compare"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
QUEUE_OF: dict[str, str] = {
    "eval": "cpu",
    "index": "cpu",
    "mine": "cpu",
    "finetune": "gpu",
    "nudge": "cpu",
    "compare": "gpu",  # it runs its fine-tune children on the worker that runs it
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


Id = Annotated[SafeText, Field(min_length=1, max_length=40)]
ModelRef = Annotated[SafeText, Field(min_length=1, max_length=300)]
Instruction = Annotated[SafeText, Field(max_length=500)]


class EncodingOptions(_Spec):
    batch_size: int = Field(64, ge=1, le=4096)
    max_seq_length: int | None = Field(None, ge=8, le=8192)
    query_instruction: Instruction | None = None
    document_instruction: Instruction | None = None


class EvalJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef = Field(description="Base model reference or fine-tuned model id.")
    split: Name = "test"
    index: Literal["flat", "ivf", "hnsw", "auto"] = "flat"


class IndexJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    kind: Literal["flat", "ivf", "hnsw", "auto"] = "auto"


class MineJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef
    split: Name = "train"
    options: dict[str, Any] = Field(default_factory=dict, description="MiningSpec fields.")


class FinetuneJobSpec(_Spec):
    dataset_id: Id
    base_model: ModelRef
    method: Literal["full", "lora", "adapter"] = "full"
    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    params: dict[str, Any] = Field(default_factory=dict, description="FinetuneSpec fields.")


class NudgeJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef | None = Field(None, description="Base model reference or fine-tuned model id.")
    model_from_job: Id | None = Field(
        None, description="Instead of `model`: the model a finetune job produces (waits for it)."
    )
    variant: Literal["nudge-n", "nudge-m"] = "nudge-n"
    train_split: Name = "train"
    val_split: Name | None = Field(None, description="None: hold out a share of train queries.")
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_split: Name | None = Field("test", description="Scored once the step is chosen.")
    steps: list[Annotated[float, Field(ge=0, le=100)]] | None = Field(
        None, min_length=1, max_length=1000, description="Candidate steps; None: default grid."
    )
    kind: Literal["flat", "ivf", "hnsw", "auto"] = "flat"

    @model_validator(mode="after")
    def _one_model(self) -> NudgeJobSpec:
        if (self.model is None) == (self.model_from_job is None):
            raise ValueError("give exactly one of 'model' and 'model_from_job'")
        return self


class CompareJobSpec(_Spec):
    dataset_id: Id
    base_model: ModelRef
    forgetting_dataset_id: Id | None = Field(
        None, description="A dataset not trained on: its metrics show forgetting."
    )
    forgetting_split: Name = "test"
    methods: list[CompareMethod] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    train_split: Name = "train"
    test_split: Name = "test"
    val_fraction: float = Field(0.2, gt=0, lt=1)
    params: dict[str, Any] = Field(
        default_factory=dict, description="FinetuneSpec fields for every fine-tune."
    )

    @model_validator(mode="after")
    def _methods(self) -> CompareJobSpec:
        if len(set(self.methods)) != len(self.methods) or "base" not in self.methods:
            raise ValueError("methods must include 'base' and name each method once")
        for method in self.methods:
            needed = METHODS[method].builds_on
            if needed and needed not in self.methods[: self.methods.index(method)]:
                raise ValueError(f"'{method}' needs '{needed}' earlier in methods")
        return self


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


class NudgeJob(_Spec):
    type: Literal["nudge"]
    spec: NudgeJobSpec


class CompareJob(_Spec):
    type: Literal["compare"]
    spec: CompareJobSpec


JobRequest = Annotated[
    EvalJob | IndexJob | MineJob | FinetuneJob | NudgeJob | CompareJob,
    Field(discriminator="type"),
]
SPEC_OF: dict[str, type[_Spec]] = {
    "eval": EvalJobSpec,
    "index": IndexJobSpec,
    "mine": MineJobSpec,
    "finetune": FinetuneJobSpec,
    "nudge": NudgeJobSpec,
    "compare": CompareJobSpec,
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


def nudge_spec(spec: NudgeJobSpec):  # -> core.nudge.NudgeSpec
    """The domain spec of a nudge job; invalid values raise ``InvalidInput``."""
    from core.nudge.spec import NudgeSpec

    return NudgeSpec(
        variant=spec.variant,
        train_split=spec.train_split,
        val_split=spec.val_split,
        val_fraction=spec.val_fraction,
        test_split=spec.test_split,
        steps=tuple(spec.steps) if spec.steps is not None else None,
    )

"""What a fine-tune job is asked to do (``FinetuneSpec``) and what it made (``FinetuneResult``)."""

from __future__ import annotations

import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import InvalidInput
from core.safe_values import check_range

Method = Literal["full", "lora", "adapter", "colbert"]
Loss = Literal["mnrl", "cached_mnrl", "cosent", "margin_mse", "distill_kl", "distillation"]
DISTILL_LOSSES = ("margin_mse", "distill_kl")  # need teacher scores of (query, document) pairs
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Upper bounds of the numeric fields: far above any sensible value, low enough that a typo
# (``epochs: 1e308``) is refused at submission instead of running for ever in a worker.
BOUNDS: dict[str, float] = {
    "epochs": 1000,
    "learning_rate": 1,
    "batch_size": 65536,
    "warmup_ratio": 1,
    "max_seq_length": 32768,
    "seed": 2**32 - 1,
    "scale": 1000,
    "mini_batch_size": 65536,
    "num_hard_negatives": 1000,
    "eval_steps": 10**7,
    "save_steps": 10**7,
    "logging_steps": 10**7,
    "lora_rank": 4096,
    "lora_alpha": 65536,
    "lora_dropout": 1,
    "lora_learning_rate": 1,
    "adapter_hidden_dim": 65536,
    "adapter_epochs": 100000,
    "adapter_learning_rate": 1,
    "query_length": 8192,
    "gradient_accumulation_steps": 65536,
    "processes": 1024,
    "rounds": 5,
}
# 1 / temperature by method: cosine scores lie in [-1, 1] (x20); MaxSim sums one cosine per query
# token (up to ``query_length``), so ColBERT trains at temperature 1 as PyLate does.
DEFAULT_SCALE: dict[str, float] = {"colbert": 1.0}
DENSE_SCALE = 20.0


@dataclass(frozen=True)
class FinetuneSpec:
    """One fine-tune job: the method, the base model and every hyper-parameter, with defaults.

    The defaults are the settings measured best on SciFact with all-MiniLM-L6-v2 (see README).
    ``query_instruction`` / ``document_instruction`` of ``None`` keep the base model's own.
    ``fp16`` / ``bf16`` / ``gradient_checkpointing`` apply on a GPU only. ``eval_steps`` of
    ``None`` evaluates (and checkpoints) once per epoch; ``save_steps`` must be a multiple of it.
    ``margin_mse`` / ``distill_kl`` distill ``teacher_reranker``'s scores of each (query,
    positive, negatives) row (MarginMSE on score margins, KL divergence of the score lists).
    ``batch_size`` is the global batch: ``processes`` DDP ranks train a share of it each.
    ``cut_query_from_positive``: a training query found verbatim in its positive (a synthesized
    title, sentence or span) is cut out of that positive, so the pair cannot be solved by
    copying (full, LoRA, ColBERT; the adapter trains on cached document vectors).
    """

    method: Method = "full"
    base_model: str = DEFAULT_MODEL
    epochs: float = 3.0
    learning_rate: float = 2e-5
    batch_size: int = 32
    warmup_ratio: float = 0.1
    max_seq_length: int = 256
    seed: int = 0
    loss: Loss = "mnrl"
    scale: float | None = None  # MNRL / CoSENT / MaxSim scale (1 / temperature); None: by method
    mini_batch_size: int = 16  # cached_mnrl only
    num_hard_negatives: int = 1  # mined negatives per query used as extra columns (0: in-batch)
    mine_negatives: bool = True  # mine them with the base model when the train split has none
    matryoshka_dims: tuple[int, ...] | None = None
    query_instruction: str | None = None
    document_instruction: str | None = None
    fp16: bool = False
    bf16: bool = False
    gradient_checkpointing: bool = False
    eval_steps: int | None = None
    save_steps: int | None = None
    logging_steps: int = 5
    gradient_accumulation_steps: int = 1
    query_length: int = 64  # colbert: query tokens (documents: max_seq_length)
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] | None = None
    lora_learning_rate: float = 2e-4
    adapter_hidden_dim: int | None = None  # None: one linear layer
    adapter_epochs: int = 20
    adapter_learning_rate: float = 1e-3
    teacher_reranker: str | None = None  # margin_mse / distill_kl: whose scores are the labels
    processes: int | None = None  # DDP ranks sharing each batch; None: every GPU (one on a CPU)
    rounds: int = 1  # > 1: mine again with the last round's model, train again (full, adapter)
    cut_query_from_positive: bool = True  # a query copied from its positive is cut out of it

    def __post_init__(self) -> None:
        for name, high in BOUNDS.items():
            check_range(getattr(self, name), 0, high, param=name)
        for dim in self.matryoshka_dims or ():
            check_range(dim, 1, 65536, param="matryoshka_dims")
        _check_choice(self, "method", Method)
        _check_choice(self, "loss", Loss)
        for name in ("epochs", "learning_rate", "batch_size", "max_seq_length"):
            _check_positive(self, name)
        if self.scale is not None:
            _check_positive(self, "scale")
        for name in ("query_length", "gradient_accumulation_steps", "rounds"):
            _check_positive(self, name)
        if self.processes is not None:
            _check_positive(self, "processes")
            if self.batch_size % self.processes:
                msg = f"batch_size {self.batch_size} must divide into {self.processes} processes"
                raise InvalidInput(msg, param="batch_size")
        for name in ("mini_batch_size", "logging_steps", "lora_rank", "lora_alpha"):
            _check_positive(self, name)
        for name in ("adapter_epochs", "adapter_learning_rate", "lora_learning_rate"):
            _check_positive(self, name)
        if not 0 <= self.warmup_ratio < 1:
            raise InvalidInput("warmup_ratio must be in [0, 1)", param="warmup_ratio")
        if not 0 <= self.lora_dropout < 1:
            raise InvalidInput("lora_dropout must be in [0, 1)", param="lora_dropout")
        if self.num_hard_negatives < 0:
            raise InvalidInput("num_hard_negatives must be >= 0", param="num_hard_negatives")
        if self.fp16 and self.bf16:
            raise InvalidInput("choose fp16 or bf16, not both", param="bf16")
        if self.loss == "distillation" and self.method != "colbert":
            raise InvalidInput("distillation trains ColBERT (method colbert)", param="loss")
        if self.loss == "distillation" and self.num_hard_negatives < 1:
            msg = "distillation needs num_hard_negatives >= 1"
            raise InvalidInput(msg, param="num_hard_negatives")
        if self.method == "colbert" and self.loss in DISTILL_LOSSES:
            msg = "ColBERT distills the base encoder's scores: loss distillation"
            raise InvalidInput(msg, param="loss")
        if self.method == "colbert" and self.loss == "cosent":
            raise InvalidInput("ColBERT trains on positives and negatives", param="loss")
        if self.method == "adapter" and self.loss in ("cosent", *DISTILL_LOSSES):
            raise InvalidInput("the query adapter trains on positives, not scores", param="loss")
        if (self.loss in DISTILL_LOSSES) != (self.teacher_reranker is not None):
            raise InvalidInput(
                "losses margin_mse and distill_kl take a teacher_reranker, and only they do",
                param="teacher_reranker",
            )
        if self.loss in DISTILL_LOSSES and self.num_hard_negatives < 1:
            raise InvalidInput(
                "distillation needs num_hard_negatives >= 1", param="num_hard_negatives"
            )
        self._check_steps()
        self._check_rounds()
        if self.matryoshka_dims is not None and (
            not self.matryoshka_dims or min(self.matryoshka_dims) <= 0
        ):
            raise InvalidInput("matryoshka_dims must be positive sizes", param="matryoshka_dims")
        if self.adapter_hidden_dim is not None and self.adapter_hidden_dim <= 0:
            raise InvalidInput("adapter_hidden_dim must be positive", param="adapter_hidden_dim")

    def _check_steps(self) -> None:
        for name in ("eval_steps", "save_steps"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InvalidInput(f"{name} must be positive", param=name)
        if self.save_steps is not None and (
            self.eval_steps is None or self.save_steps % self.eval_steps
        ):
            raise InvalidInput(
                "save_steps must be a multiple of eval_steps (the best checkpoint is kept)",
                param="save_steps",
            )

    def _check_rounds(self) -> None:
        if self.rounds == 1:
            return
        if self.method not in ("full", "adapter"):
            raise InvalidInput("rounds > 1 re-mines for methods full and adapter", param="rounds")
        if self.loss in ("cosent", *DISTILL_LOSSES) or not self.mine_negatives:
            raise InvalidInput(
                "rounds > 1 re-mines hard negatives: it needs mine_negatives and an MNRL loss",
                param="rounds",
            )
        if self.num_hard_negatives < 1:
            raise InvalidInput("rounds > 1 needs num_hard_negatives >= 1", param="rounds")

    @property
    def loss_scale(self) -> float:
        """``scale``, or the method's default when unset."""
        return self.scale if self.scale is not None else DEFAULT_SCALE.get(self.method, DENSE_SCALE)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FinetuneSpec:
        """A spec from plain JSON values; unknown or ill-typed fields raise ``InvalidInput``."""
        known = {f.name: f for f in fields(cls)}
        if unknown := sorted(set(data) - set(known)):
            raise InvalidInput(f"unknown field '{unknown[0]}'", param=unknown[0])
        hints = typing.get_type_hints(cls)
        return cls(**{k: _coerce(k, v, hints[k]) for k, v in data.items()})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class FinetuneResult:
    """A finished fine-tune: where the model is, and how it did on the validation split."""

    model_dir: Path
    method: Method
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    samples_per_second: float = 0.0
    train_examples: int = 0
    best_step: int | None = None
    rounds: list[dict[str, Any]] = field(default_factory=list)  # per round: metrics, time, mined

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_dir": str(self.model_dir)}


def _check_choice(spec: FinetuneSpec, name: str, kind: object) -> None:
    if getattr(spec, name) not in get_args(kind):
        choices = " | ".join(get_args(kind))
        raise InvalidInput(f"{name} must be one of {choices}", param=name)


def _check_positive(spec: FinetuneSpec, name: str) -> None:
    if not getattr(spec, name) > 0:
        raise InvalidInput(f"{name} must be positive", param=name)


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """``value`` checked against the field's type; lists become tuples."""
    options = get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    if value is None:
        if type(None) in options:
            return None
        raise InvalidInput(f"{name} may not be null", param=name)
    for option in options:
        origin = typing.get_origin(option)
        if origin is tuple and isinstance(value, list | tuple):
            item = get_args(option)[0]
            if all(isinstance(v, item) and not isinstance(v, bool) for v in value):
                return tuple(value)
        elif origin is Literal and value in get_args(option):
            return value
        elif option is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        elif option in (int, str, bool) and type(value) is option:
            return value
    raise InvalidInput(f"{name} has an invalid value {value!r}", param=name)

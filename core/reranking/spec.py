"""What a reranker fine-tune is asked to do (``RerankSpec``) and what it made (``RerankResult``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

from core.errors import InvalidInput
from core.safe_values import check_range

Method = Literal["full", "lora"]
Loss = Literal["bce", "lambda", "listnet", "margin_mse"]
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
BOUNDS: dict[str, float] = {
    "epochs": 1000,
    "learning_rate": 1,
    "batch_size": 65536,
    "warmup_ratio": 1,
    "max_seq_length": 32768,
    "seed": 2**32 - 1,
    "num_negatives": 1000,
    "candidates": 1000,
    "eval_steps": 10**7,
    "logging_steps": 10**7,
    "lora_rank": 4096,
    "lora_alpha": 65536,
    "lora_dropout": 1,
}


@dataclass(frozen=True)
class RerankSpec:
    """One cross-encoder fine-tune: the starting model, the loss and its hyper-parameters.

    ``base_model`` is a reranker checkpoint (a sequence-classification model with one label)
    or an encoder (a sentence-transformers or transformers directory): a fresh one-label head
    is put on an encoder. Losses: ``bce`` over (query, document, 0/1) pairs of each positive
    and ``num_negatives`` hard negatives; ``lambda`` (LambdaLoss) and ``listnet`` over one list
    per query (its positives and negatives); ``margin_mse`` over (query, positive, negative)
    rows whose label is the teacher's score margin: ``teacher_model`` (a bi-encoder, cosine
    scores), else the dataset's own scores (scored pairs, FlagEmbedding ``pos_scores``).
    Validation reranks the base embedder's top ``candidates`` for each validation query; the
    best checkpoint is the one with the highest reranked nDCG@10.
    """

    method: Method = "full"
    base_model: str = DEFAULT_MODEL
    loss: Loss = "bce"
    epochs: float = 1.0
    learning_rate: float = 2e-5
    batch_size: int = 16
    warmup_ratio: float = 0.1
    max_seq_length: int = 256
    seed: int = 0
    num_negatives: int = 4
    mine_negatives: bool = True
    teacher_model: str | None = None
    candidates: int = 20
    eval_steps: int | None = None
    logging_steps: int = 5
    lora_rank: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.1
    lora_target_modules: tuple[str, ...] = ("query", "key", "value", "dense")

    def __post_init__(self) -> None:
        for name, high in BOUNDS.items():
            check_range(getattr(self, name), 0, high, param=name)
        for name, kind in (("method", Method), ("loss", Loss)):
            if getattr(self, name) not in get_args(kind):
                raise InvalidInput(
                    f"{name} must be one of {' | '.join(get_args(kind))}", param=name
                )
        for name in ("epochs", "learning_rate", "batch_size", "max_seq_length", "candidates"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be positive", param=name)
        for name in ("logging_steps", "lora_rank", "lora_alpha", "num_negatives"):
            if not getattr(self, name) > 0:
                raise InvalidInput(f"{name} must be positive", param=name)
        if self.eval_steps is not None and self.eval_steps <= 0:
            raise InvalidInput("eval_steps must be positive", param="eval_steps")
        if not 0 <= self.warmup_ratio < 1:
            raise InvalidInput("warmup_ratio must be in [0, 1)", param="warmup_ratio")
        if not 0 <= self.lora_dropout < 1:
            raise InvalidInput("lora_dropout must be in [0, 1)", param="lora_dropout")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RerankResult:
    """A finished reranker fine-tune: where it is and how it reranked the validation split.

    ``metrics_before`` / ``metrics_after`` are validation nDCG@10 etc. of the starting and the
    trained cross-encoder reranking the first stage's candidates; ``fusion`` is the weight
    chosen on validation and the first-stage, reranked and fused metrics there.
    """

    model_dir: Path
    metrics_before: dict[str, float]
    metrics_after: dict[str, float]
    fusion: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    train_examples: int = 0
    best_step: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_dir": str(self.model_dir)}

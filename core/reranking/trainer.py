"""Cross-encoder training with ``CrossEncoderTrainer``: table, loss, arguments, resume."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers.cross_encoder import (
    CrossEncoderTrainer,
    CrossEncoderTrainingArguments,
    losses,
)

from core.datasets.model import RetrievalDataset
from core.errors import Cancelled
from core.reranking.data import Teacher, list_columns, margin_columns, pair_columns
from core.reranking.spec import RerankSpec
from core.reranking.validator import RerankValidator
from core.training.checkpoints import (
    CHECKPOINTS,
    best_checkpoint_args,
    best_metrics,
    best_step,
    train_resuming,
)
from core.training.hooks import CancelCheck, Reporter
from core.training.progress_callback import ProgressCallback

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

logger = logging.getLogger(__name__)


@dataclass
class RerankRun:
    """The trained cross-encoder (best checkpoint loaded) and what the trainer recorded."""

    model: CrossEncoder
    history: list[dict[str, Any]]
    best_metrics: dict[str, float]
    best_step: int | None
    train_seconds: float
    train_examples: int


def train_columns(
    spec: RerankSpec, ds: RetrievalDataset, split: str, teacher: Teacher | None
) -> dict[str, list]:
    """The training table ``spec.loss`` reads."""
    if spec.loss == "bce":
        return pair_columns(ds, split, spec.num_negatives, seed=spec.seed)
    if spec.loss in ("lambda", "listnet"):
        return list_columns(ds, split, spec.num_negatives, seed=spec.seed)
    assert teacher is not None, "margin_mse needs a teacher"
    return margin_columns(ds, split, spec.num_negatives, teacher, seed=spec.seed)


def build_loss(spec: RerankSpec, model: CrossEncoder) -> torch.nn.Module:
    """BinaryCrossEntropyLoss, LambdaLoss (NDCGLoss2++), ListNetLoss or MarginMSELoss."""
    if spec.loss == "bce":
        return losses.BinaryCrossEntropyLoss(model)
    if spec.loss == "lambda":
        return losses.LambdaLoss(model)
    if spec.loss == "listnet":
        return losses.ListNetLoss(model)
    return losses.MarginMSELoss(model)


def training_args(spec: RerankSpec, out: Path, has_eval: bool) -> CrossEncoderTrainingArguments:
    gpu = torch.cuda.is_available()
    strategy = "steps" if spec.eval_steps is not None else "epoch"
    return CrossEncoderTrainingArguments(
        output_dir=str(out),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_ratio,  # a float below 1 is a ratio in transformers v5
        seed=spec.seed,
        dataloader_pin_memory=gpu,
        eval_strategy=strategy if has_eval else "no",
        eval_steps=spec.eval_steps,
        save_strategy=strategy,
        save_steps=spec.eval_steps or 500,
        **best_checkpoint_args(has_eval),
        logging_steps=spec.logging_steps,
        report_to="none",
        disable_tqdm=True,
    )


def train_cross_encoder(
    spec: RerankSpec,
    ds: RetrievalDataset,
    model: CrossEncoder,
    output_dir: Path,
    *,
    train_split: str,
    validator: RerankValidator | None,
    teacher: Teacher | None,
    reporter: Reporter,
    should_cancel: CancelCheck | None,
    resume: bool,
) -> RerankRun:
    """Train ``model`` in place on ``train_split``; ``validator`` picks the best checkpoint."""
    from datasets import Dataset

    table = Dataset.from_dict(train_columns(spec, ds, train_split, teacher))
    progress = ProgressCallback(reporter, should_cancel)
    ckpt = output_dir / CHECKPOINTS
    trainer = CrossEncoderTrainer(
        model=model,
        args=training_args(spec, ckpt, validator is not None),
        train_dataset=table,
        loss=build_loss(spec, model),
        evaluator=validator,
        callbacks=[progress],
    )
    output = train_resuming(trainer, ckpt, resume, reporter)
    if progress.cancelled:
        raise Cancelled(f"reranker fine-tune cancelled at step {trainer.state.global_step}")
    state = trainer.state
    return RerankRun(
        model=trainer.model,
        history=state.log_history,
        best_metrics=best_metrics(state),
        best_step=best_step(state.best_model_checkpoint),
        train_seconds=output.metrics["train_runtime"] - (validator.seconds if validator else 0),
        train_examples=len(table),
    )

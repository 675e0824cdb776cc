"""Full and LoRA fine-tuning with ``SentenceTransformerTrainer``: data, loss, arguments, resume."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer import losses

from core.datasets.model import RetrievalDataset
from core.errors import Cancelled, InvalidInput
from core.models.config import ModelConfig
from core.models.resolve import ResolvedModel
from core.training.checkpoints import (
    CHECKPOINTS,
    best_checkpoint_args,
    best_metrics,
    best_step,
    train_resuming,
)
from core.training.distributed import world_size
from core.training.examples import scored_columns, training_triples, triple_columns
from core.training.hooks import CancelCheck, Reporter, Teacher
from core.training.progress_callback import ProgressCallback
from core.training.retrieval_evaluator import RetrievalEvaluator
from core.training.spec import DISTILL_LOSSES, FinetuneSpec

if TYPE_CHECKING:
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)


@dataclass
class TrainRun:
    """The trained model (best checkpoint loaded) and what the trainer recorded."""

    model: SentenceTransformer | None  # None: trained by DDP ranks and not loaded back
    history: list[dict[str, Any]]
    best_metrics: dict[str, float]
    best_step: int | None
    train_seconds: float
    samples_per_second: float
    train_examples: int


def train_columns(
    spec: FinetuneSpec, ds: RetrievalDataset, split: str, teacher: Teacher | None = None
) -> dict[str, list]:
    """The training table for ``spec.loss``: scored pairs for CoSENT, else query/pos/negs;
    the distillation losses add the teacher's ``label`` per row (margins or the score list)."""
    if spec.loss == "cosent":
        return scored_columns(ds, split)
    triples = training_triples(ds, split, spec.num_hard_negatives, seed=spec.seed)
    columns = triple_columns(ds, triples, cut_query=spec.cut_query_from_positive)
    if spec.loss in DISTILL_LOSSES:
        if teacher is None:
            raise InvalidInput(f"loss '{spec.loss}' needs teacher scores", param="teacher_reranker")
        width = len(columns) - 1  # positive and negatives
        pairs = [(t.query_id, d) for t in triples for d in (t.positive_id, *t.negative_ids)[:width]]
        scores = teacher(pairs)
        rows = [scores[i * width : (i + 1) * width] for i in range(len(triples))]
        margins = spec.loss == "margin_mse"
        columns["label"] = [[r[0] - s for s in r[1:]] if margins else list(r) for r in rows]
    return columns


def build_loss(spec: FinetuneSpec, model: SentenceTransformer) -> torch.nn.Module:
    """MNRL (in-batch + hard negatives), its cached variant, or CoSENT; Matryoshka-wrapped.
    ColBERT: the same losses over MaxSim scores (``core.training.multi_vector``)."""
    if spec.method == "colbert":
        from core.training.multi_vector import multi_vector_loss

        return multi_vector_loss(spec, model)
    gather = world_size() > 1  # in-batch negatives from every rank, as one process would see
    if spec.loss == "cosent":
        loss: torch.nn.Module = losses.CoSENTLoss(model, scale=spec.loss_scale)
    elif spec.loss == "margin_mse":
        loss = losses.MarginMSELoss(model)
    elif spec.loss == "distill_kl":
        loss = losses.DistillKLDivLoss(model)
    elif spec.loss == "cached_mnrl":
        loss = losses.CachedMultipleNegativesRankingLoss(
            model,
            scale=spec.loss_scale,
            mini_batch_size=spec.mini_batch_size,
            gather_across_devices=gather,
        )
    else:
        loss = losses.MultipleNegativesRankingLoss(
            model, scale=spec.loss_scale, gather_across_devices=gather
        )
    if spec.matryoshka_dims:
        dim = model.get_embedding_dimension() or 0
        if max(spec.matryoshka_dims) > dim:
            raise InvalidInput(
                f"matryoshka_dims exceed the model's dimension {dim}", param="matryoshka_dims"
            )
        loss = losses.MatryoshkaLoss(model, loss, matryoshka_dims=list(spec.matryoshka_dims))
    return loss


def column_settings(columns: list[str], config: ModelConfig) -> tuple[dict, dict]:
    """Per-column prompts and routes: the first column is the query side, the rest documents,
    so training encodes text exactly as ``Embedder.encode`` does at evaluation."""
    text_columns = [c for c in columns if c not in ("score", "label")]
    routes = {c: "query" if i == 0 else "document" for i, c in enumerate(text_columns)}
    instruction = {"query": config.query_instruction, "document": config.document_instruction}
    prompts = {c: instruction[route] for c, route in routes.items() if instruction[route]}
    return prompts, routes


def training_args(
    spec: FinetuneSpec, out: Path, columns: list[str], config: ModelConfig, has_eval: bool
) -> SentenceTransformerTrainingArguments:
    prompts, routes = column_settings(columns, config)
    gpu = torch.cuda.is_available()
    by_steps = spec.eval_steps is not None
    strategy = "steps" if by_steps else "epoch"
    return trainer_classes(spec)[1](
        output_dir=str(out),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size // world_size(),
        gradient_accumulation_steps=spec.gradient_accumulation_steps,
        learning_rate=spec.lora_learning_rate if spec.method == "lora" else spec.learning_rate,
        warmup_steps=spec.warmup_ratio,  # a float below 1 is a ratio in transformers v5
        seed=spec.seed,
        batch_sampler=BatchSamplers.BATCH_SAMPLER
        if spec.loss == "cosent"
        else BatchSamplers.NO_DUPLICATES,
        prompts=prompts or None,
        router_mapping=routes,
        fp16=spec.fp16 and gpu,
        bf16=spec.bf16 and gpu,
        dataloader_pin_memory=gpu,
        **({} if gpu or world_size() == 1 else {"use_cpu": True, "ddp_backend": "gloo"}),
        eval_strategy=strategy if has_eval else "no",
        eval_steps=spec.eval_steps,
        save_strategy=strategy,
        save_steps=spec.save_steps or spec.eval_steps or 500,
        **best_checkpoint_args(has_eval),
        logging_steps=spec.logging_steps,
        report_to="none",
        disable_tqdm=True,
        **({"gradient_checkpointing": True} if spec.gradient_checkpointing and gpu else {}),
    )


def trainer_classes(spec: FinetuneSpec) -> tuple[type, type]:
    """The trainer and its arguments: sentence-transformers', or its MultiVectorEncoder ones."""
    if spec.method == "colbert":
        from sentence_transformers import (
            MultiVectorEncoderTrainer,
            MultiVectorEncoderTrainingArguments,
        )

        return MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
    return SentenceTransformerTrainer, SentenceTransformerTrainingArguments


def gpu_note(spec: FinetuneSpec) -> str | None:
    """A note when GPU-only settings were asked for on a machine without one."""
    asked = [n for n in ("fp16", "bf16", "gradient_checkpointing") if getattr(spec, n)]
    if asked and not torch.cuda.is_available():
        return f"no GPU: {', '.join(asked)} ignored"
    return None


def train_st(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    model: SentenceTransformer,
    base: ResolvedModel,
    output_dir: Path,
    *,
    splits: tuple[str, str | None],
    reporter: Reporter,
    should_cancel: CancelCheck | None,
    resume: bool,
    teacher: Teacher | None = None,
    columns: dict[str, list] | None = None,
) -> TrainRun:
    """Train ``model`` in place on ``splits[0]`` (or on ``columns`` when given), evaluating
    on ``splits[1]`` when given; ``teacher`` scores (query id, document id) pairs for the
    distillation losses."""
    from datasets import Dataset

    train_split, val_split = splits
    table: Dataset = Dataset.from_dict(columns or train_columns(spec, ds, train_split, teacher))
    evaluator = RetrievalEvaluator(ds, val_split, base) if val_split else None
    progress = ProgressCallback(reporter, should_cancel)
    ckpt = output_dir / CHECKPOINTS
    args = training_args(spec, ckpt, table.column_names, base.config, evaluator is not None)
    trainer = trainer_classes(spec)[0](
        model=model,
        args=args,
        train_dataset=table,
        loss=build_loss(spec, model),
        evaluator=evaluator,
        callbacks=[progress],
    )
    output = train_resuming(trainer, ckpt, resume, reporter)
    # The trainer's own clock, less validation: comparable with a plain trainer's samples/s.
    elapsed = output.metrics["train_runtime"] - (evaluator.seconds if evaluator else 0.0)
    if progress.cancelled:
        raise Cancelled(f"fine-tune cancelled at step {trainer.state.global_step}")
    samples = output.metrics["train_samples_per_second"] * output.metrics["train_runtime"]
    return TrainRun(
        model=trainer.model,
        history=trainer.state.log_history,
        best_metrics=best_metrics(trainer.state),
        best_step=best_step(trainer.state.best_model_checkpoint),
        train_seconds=elapsed,
        samples_per_second=samples / max(elapsed, 1e-9),
        train_examples=len(table),
    )

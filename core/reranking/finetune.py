"""``run_rerank_finetune``: one spec in, a cross-encoder directory and its validation figures out.

The validation split is reranked as deployment would: the first stage (``first_stage``, by
default the base model when it is an encoder) retrieves ``spec.candidates`` documents per
query, the cross-encoder reorders them. That picks the best checkpoint (reranked nDCG@10) and
then the fusion weight of first-stage and reranker scores, saved with the model
(``embedtune_rerank.json``) beside a model card that says whether the reranker helped.
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.models.resolve import resolve_model
from core.reranking.card import write_rerank_card
from core.reranking.data import Teacher, dataset_teacher
from core.reranking.fusion import choose_weight
from core.reranking.reranker import RERANK_CONFIG, is_reranker_dir, load_cross_encoder
from core.reranking.spec import DEFAULT_MODEL, RerankResult, RerankSpec
from core.reranking.teachers import embedder_teacher
from core.reranking.validator import RerankValidator
from core.training.hooks import CancelCheck, LogReporter, Reporter
from core.training.preparation import held_out_validation, mine_with_defaults

logger = logging.getLogger(__name__)


def run_rerank_finetune(
    spec: RerankSpec,
    dataset: RetrievalDataset,
    output_dir: Path,
    *,
    train_split: str = "train",
    val_split: str | None = "val",
    first_stage: str | None = None,
    reporter: Reporter | None = None,
    should_cancel: CancelCheck | None = None,
    resume: bool = True,
    models_dir: Path | None = None,
    allow_paths: bool | Callable[[str], bool] = True,
    cache: EmbeddingCache | None = None,
) -> RerankResult:
    """Fine-tune the cross-encoder ``spec.base_model`` on ``train_split`` into ``output_dir``.

    ``first_stage`` (a model reference; None: ``spec.base_model`` when it is an encoder, else
    all-MiniLM-L6-v2) mines the hard negatives when the split has none and retrieves the
    validation candidates. Checkpoints live under ``output_dir/checkpoints``; with ``resume`` a
    rerun continues from the last one. ``should_cancel`` is polled every step.
    ``allow_paths`` (or a predicate on each reference) is False for references from a client.
    """
    from core.reranking.trainer import train_cross_encoder

    reporter = reporter or LogReporter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = allow_paths if callable(allow_paths) else (lambda _ref: allow_paths)
    base = resolve_model(spec.base_model, models_dir=models_dir, allow_paths=paths(spec.base_model))
    retriever = _first_stage(spec, first_stage, base.path, models_dir, paths)
    dataset, val, overlap = held_out_validation(dataset, (train_split, val_split), reporter)
    if overlap:
        reporter.on_event(f"{overlap} queries of '{val}' are also in '{train_split}'")
    if spec.mine_negatives and not _has_negatives(dataset, train_split):
        dataset = mine_with_defaults(
            dataset,
            train_split,
            retriever,
            spec.num_negatives,
            cache=cache,
            reporter=reporter,
            should_cancel=should_cancel,
        )
    import torch

    torch.manual_seed(spec.seed)  # the fresh head of an encoder starts the same every run
    model = load_cross_encoder(base, max_length=spec.max_seq_length)
    if spec.method == "lora":
        from core.reranking.lora import add_rerank_lora

        add_rerank_lora(model, spec)
    validator = _validator(dataset, val, retriever, spec, base, cache)
    before = validator(model, steps=0) if validator else {}
    run = train_cross_encoder(
        spec,
        dataset,
        model,
        output_dir,
        train_split=train_split,
        validator=validator,
        teacher=_teacher(spec, dataset, models_dir, paths, cache),
        reporter=reporter,
        should_cancel=should_cancel,
        resume=resume,
    )
    if spec.method == "lora":
        from core.training.lora import merge_lora

        merge_lora(run.model)  # type: ignore[arg-type]  # a CrossEncoder has the same layout
    fusion = {}
    if validator is not None:
        best = validator.runs.get(run.best_step or -1) or validator(run.model)
        choice = choose_weight(validator.candidates, best, validator.qrels)
        fusion = {**choice.to_dict(), "first_stage_model": retriever.model.ref, "split": val}
    run.model.save_pretrained(str(output_dir), create_model_card=False)
    result = RerankResult(
        model_dir=output_dir,
        metrics_before=before,
        metrics_after=run.best_metrics,
        fusion=fusion,
        history=run.history,
        train_seconds=run.train_seconds,
        train_examples=run.train_examples,
        best_step=run.best_step,
    )
    _write_config(result, spec, output_dir)
    write_rerank_card(result, spec, dataset, (train_split, val), output_dir)
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    reporter.on_event(f"reranker written to {output_dir}")
    return result


def _first_stage(
    spec: RerankSpec,
    ref: str | None,
    base_path: Path,
    models_dir: Path | None,
    paths: Callable[[str], bool],
) -> Embedder:
    if ref is None:
        ref = DEFAULT_MODEL if is_reranker_dir(base_path) else spec.base_model
    return load_embedder(ref, models_dir=models_dir, allow_paths=paths(ref))


def _has_negatives(ds: RetrievalDataset, split: str) -> bool:
    return any(ds.negatives.get(q) for q in ds.qrels.get(split, {}))


def _validator(
    ds: RetrievalDataset,
    val: str | None,
    retriever: Embedder,
    spec: RerankSpec,
    base,
    cache: EmbeddingCache | None,
) -> RerankValidator | None:
    """The validator over the first stage's top ``spec.candidates`` of each ``val`` query."""
    if val is None:
        return None
    eval_spec = EvalSpec(split=val, top_k=spec.candidates, count_truncated=False)
    candidates = evaluate(ds, retriever, eval_spec, cache=cache).run()
    return RerankValidator(ds, val, candidates, base, batch_size=spec.batch_size * 2)


def _teacher(
    spec: RerankSpec,
    ds: RetrievalDataset,
    models_dir: Path | None,
    paths: Callable[[str], bool],
    cache: EmbeddingCache | None,
) -> Teacher | None:
    if spec.loss != "margin_mse":
        return None
    if spec.teacher_model is None:
        return dataset_teacher(ds)
    ref = spec.teacher_model
    teacher = load_embedder(ref, models_dir=models_dir, allow_paths=paths(ref))
    return embedder_teacher(ds, teacher, cache)


def _write_config(result: RerankResult, spec: RerankSpec, out: Path) -> Path:
    """``embedtune_rerank.json``: the fusion weight chosen on validation, what it was chosen
    for, the validation metrics and the spec; ``Reranker.fusion_weight`` reads it back."""
    payload = {
        "fusion": result.fusion or None,  # no validation split: no weight was chosen
        "metrics_before": result.metrics_before,
        "metrics_after": result.metrics_after,
        "best_step": result.best_step,
        "train_seconds": result.train_seconds,
        "train_examples": result.train_examples,
        "spec": spec.to_dict(),
    }
    path = out / RERANK_CONFIG
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return path

"""``run_finetune``: one spec in, a model directory and its before/after metrics out."""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, evaluate, truncated_counts
from core.models.cache import EmbeddingCache
from core.models.decoder import lora_targets
from core.models.embedder import Embedder
from core.models.loading import fingerprint, load_sentence_transformer
from core.models.resolve import ResolvedModel, resolve_model
from core.training.hooks import CancelCheck, LogReporter, Reporter, Teacher
from core.training.model_card import write_card, write_history
from core.training.preparation import held_out_validation, mine_with_defaults
from core.training.spec import FinetuneResult, FinetuneSpec

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

logger = logging.getLogger(__name__)
MERGED = "merged"  # a LoRA model's directory holds its merged weights here


def run_finetune(
    spec: FinetuneSpec,
    dataset: RetrievalDataset,
    output_dir: Path,
    *,
    train_split: str = "train",
    val_split: str | None = "val",
    reporter: Reporter | None = None,
    should_cancel: CancelCheck | None = None,
    resume: bool = True,
    models_dir: Path | None = None,
    allow_paths: bool = True,
    cache: EmbeddingCache | None = None,
    teacher: Teacher | None = None,
) -> FinetuneResult:
    """Fine-tune ``spec.base_model`` on ``train_split`` and write a model directory.

    Validation on ``val_split`` (skipped, with a note, when the dataset lacks it) picks the best
    checkpoint. Checkpoints live under ``output_dir/checkpoints``; with ``resume`` a rerun into
    the same directory continues from the last one, and they are removed once the model is
    written. ``should_cancel`` is polled every step: on True the run saves its state and raises
    ``Cancelled``. ``cache`` serves base-model embeddings (the "before" metrics, the adapter).
    ``allow_paths=False`` when ``spec.base_model`` came from a client (never a path).
    ``teacher`` scores (query id, document id) pairs for the distillation losses (the
    ``spec.teacher_reranker``'s scores, see ``core.reranking.teachers.reranker_teacher``).
    """
    reporter = reporter or LogReporter()
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    base = _base_embedder(spec, models_dir, allow_paths, reporter)
    dataset, val, overlap = held_out_validation(dataset, (train_split, val_split), reporter)
    if overlap:
        reporter.on_event(
            f"{overlap} queries of '{val}' are also in '{train_split}': not trained on"
        )
    if spec.mine_negatives and _lacks_negatives(spec, dataset, train_split):
        dataset = _mine(spec, dataset, train_split, base, cache, reporter, should_cancel)
    if note := _negatives_note(spec, dataset, train_split):
        reporter.on_event(note)
    reporter.on_event(_truncation_note(base, dataset, train_split))
    before = _evaluate(dataset, base, val, cache, _staged(reporter, "validate before"))
    splits = (train_split, val)
    hooks = {"reporter": reporter, "should_cancel": should_cancel, "resume": resume}
    first = {**hooks, "teacher": teacher}
    run = _train_round(spec, dataset, base, output_dir, splits, first, cache)
    rounds = [_round_record(1, run, mined=None)]
    out = output_dir
    for number in range(2, spec.rounds + 1):
        reporter.on_event(f"round {number}: mining with the round {number - 1} model")
        previous = _tuned_embedder(spec, base, run, dataset, splits, cache)
        dataset, mined = _remine(spec, dataset, train_split, previous, reporter, should_cancel)
        # A full model continues from the last round's weights (DDP ranks load them from the
        # directory that round wrote).
        start = base
        if spec.method != "adapter":
            start = replace(base, st=run.model, model=replace(base.model, path=out))
        out = output_dir / f"round-{number}"
        run = _train_round(spec, dataset, start, out, splits, hooks, cache)
        rounds.append(_round_record(number, run, mined))
    if spec.rounds > 1:
        _save_final(spec, base, run, output_dir)
    base.config.save(output_dir)
    result = FinetuneResult(
        model_dir=output_dir,
        method=spec.method,
        metrics_before=before,
        metrics_after=run.best_metrics,
        history=run.history,
        train_seconds=sum(r["train_seconds"] for r in rounds),
        samples_per_second=run.samples_per_second,
        train_examples=run.train_examples,
        best_step=run.best_step,
        rounds=rounds,
    )
    if note := regression_note(before, result.metrics_after, val):
        reporter.on_event(note)
        logger.warning(note)
    write_card(result, spec, dataset, splits, output_dir)
    write_history(result, spec, output_dir)
    shutil.rmtree(output_dir / "checkpoints", ignore_errors=True)
    for number in range(2, spec.rounds + 1):
        shutil.rmtree(output_dir / f"round-{number}", ignore_errors=True)
    reporter.on_event(f"model written to {output_dir}")
    return result


def regression_note(
    before: dict[str, float], after: dict[str, float], split: str | None, metric: str = "ndcg@10"
) -> str | None:
    """A warning when the tuned model scores below the base model on the validation split."""
    if metric not in before or metric not in after or after[metric] >= before[metric]:
        return None
    return (
        f"validation {metric} on '{split}' fell from {before[metric]:.4f} (base model) to "
        f"{after[metric]:.4f}: the tuned model is worse than the base; do not deploy it as is"
    )


def _train_round(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    start: Embedder,
    out: Path,
    splits: tuple[str, str | None],
    hooks: dict,
    cache: EmbeddingCache | None,
):
    """One round of training from ``start`` (the base, or the previous round's model)."""
    if spec.method == "adapter":
        adapter_hooks = {k: v for k, v in hooks.items() if k != "teacher"}
        return _train_adapter(spec, ds, start, out, splits, adapter_hooks, cache)
    return _train_transformer(spec, ds, start, out, splits, {"teacher": None, **hooks}, cache)


def _round_record(number: int, run, mined: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "round": number,
        "metrics_after": dict(run.best_metrics),
        "best_step": run.best_step,
        "train_seconds": run.train_seconds,
        "train_examples": run.train_examples,
        "mined": mined,  # None: round 1 (the base model mined, or the data had negatives)
    }


def _tuned_embedder(
    spec: FinetuneSpec,
    base: Embedder,
    run,
    ds: RetrievalDataset,
    splits: tuple[str, str | None],
    cache: EmbeddingCache | None,
) -> Embedder:
    """The previous round's model as an embedder to mine with (never cached: its vectors
    would be filed under the base model's fingerprint)."""
    fingerprint = f"{base.fingerprint}-tuned"
    if spec.method != "adapter":
        return Embedder(base.model, run.model, fingerprint, base.batch_size)
    from core.training.adapter_training import base_vectors
    from core.training.query_adapter import VectorEmbedder

    raw = _adapter_input(base)
    queries = [q for q in ds.qrels.get(splits[0], {}) if q in ds.queries]
    vectors = base_vectors(raw, ds, queries, cache)
    return VectorEmbedder(raw.model, base.st, fingerprint, vectors=vectors, adapter=run.adapter)


def _remine(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    split: str,
    embedder: Embedder,
    reporter: Reporter,
    should_cancel: CancelCheck | None,
) -> tuple[RetrievalDataset, dict[str, Any]]:
    """The split's negatives mined again with ``embedder``; how many, in how long."""
    began = time.perf_counter()
    mined = _mine(spec, ds, split, embedder, None, reporter, should_cancel)
    judged = mined.qrels.get(split, {})
    new, old = mined.negatives, ds.negatives
    changed = sum(1 for q in judged if set(new.get(q, ())) != set(old.get(q, ())))
    summary = {
        "seconds": time.perf_counter() - began,
        "queries_with_negatives": sum(1 for q in judged if mined.negatives.get(q)),
        "queries_changed": changed,
    }
    return mined, summary


def _save_final(spec: FinetuneSpec, base: Embedder, run, out: Path) -> None:
    """The last round's model in ``out``, where round 1 wrote its own."""
    if spec.method == "adapter":
        from core.training.query_adapter import save_adapter_model

        save_adapter_model(base.st, run.adapter, out)
    else:
        run.model.save_pretrained(str(out), create_model_card=False)


def _base_embedder(
    spec: FinetuneSpec, models_dir: Path | None, allow_paths: bool, reporter: Reporter
) -> Embedder:
    """The base model with the instructions and max length the spec trains with, loaded only
    once the memory estimate says the run fits the device (``insufficient_memory`` else)."""
    import torch

    from core.training.memory import check_memory

    resolved = resolve_model(spec.base_model, models_dir=models_dir, allow_paths=allow_paths)
    if found := check_memory(resolved.path, spec, gpu=torch.cuda.is_available()):
        reporter.on_event(f"memory estimate: {found.describe()}")
    config = resolved.config.with_overrides(
        query_instruction=spec.query_instruction,
        document_instruction=spec.document_instruction,
        max_seq_length=spec.max_seq_length,
    )
    resolved = replace(resolved, config=config)
    st = load_sentence_transformer(resolved)
    return Embedder(resolved, st, fingerprint(resolved.path))


def _wants_negatives(spec: FinetuneSpec) -> bool:
    return spec.loss != "cosent" and spec.num_hard_negatives > 0


def _truncation_note(base: Embedder, ds: RetrievalDataset, split: str) -> str:
    """How many of the split's queries and the corpus documents training cuts to length."""
    judged = ds.qrels.get(split, ds.scores)  # scored pairs (CoSENT) have no judgments
    queries = [ds.queries[q].text for q in judged if q in ds.queries]
    cut = truncated_counts(base, [d.full_text for d in ds.corpus.values()], queries)
    return (
        f"texts over {base.max_seq_length} tokens are truncated: {cut['documents']} of "
        f"{len(ds.corpus)} documents, {cut['queries']} of {len(queries)} '{split}' queries"
    )


def _lacks_negatives(spec: FinetuneSpec, ds: RetrievalDataset, split: str) -> bool:
    """Whether the loss wants hard negatives and no query of ``split`` has any."""
    judged = ds.qrels.get(split, {})
    return _wants_negatives(spec) and bool(judged) and not any(ds.negatives.get(q) for q in judged)


def _mine(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    split: str,
    base: Embedder,
    cache: EmbeddingCache | None,
    reporter: Reporter,
    should_cancel: CancelCheck | None,
) -> RetrievalDataset:
    """Hard negatives for the ``split`` queries, mined with ``base``, progress staged."""
    progress = _staged(reporter, "mine")
    return mine_with_defaults(
        ds,
        split,
        base,
        spec.num_hard_negatives,
        cache=cache,
        reporter=reporter,
        should_cancel=should_cancel,
        progress=progress,
    )


def _negatives_note(spec: FinetuneSpec, ds: RetrievalDataset, split: str) -> str | None:
    if not _wants_negatives(spec):
        return None
    judged = ds.qrels.get(split, {})
    short = sum(1 for q in judged if len(ds.negatives.get(q, [])) < spec.num_hard_negatives)
    if not short:
        return None
    return f"{short} of {len(judged)} training queries lack mined negatives: random ones fill in"


def _staged(reporter: Reporter, prefix: str) -> Callable[[str, int, int], None]:
    """A ``progress(stage, done, total)`` callback that reports ``"<prefix>: <stage>"``."""
    return lambda stage, done, total: reporter.on_progress(f"{prefix}: {stage}", done, total)


def _evaluate(
    ds: RetrievalDataset,
    embedder: Embedder,
    split: str | None,
    cache: EmbeddingCache | None,
    progress: Callable[[str, int, int], None],
) -> dict[str, float]:
    if split is None:
        return {}
    spec = EvalSpec(split=split, count_truncated=False)
    return dict(evaluate(ds, embedder, spec, cache=cache, progress=progress).metrics)


def _train_transformer(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    base: Embedder,
    out: Path,
    splits: tuple[str, str | None],
    hooks: dict,
    cache: EmbeddingCache | None,
):
    from core.training.distributed import Bundle, train_distributed, train_processes
    from core.training.st_trainer import TrainRun, gpu_note, train_columns, train_st

    if note := gpu_note(spec):
        hooks["reporter"].on_event(note)
        logger.info(note)
    columns = None
    if spec.method == "colbert" and spec.loss == "distillation":
        from core.training.multi_vector import distillation_columns

        columns = distillation_columns(spec, ds, splits[0], base, cache)  # before it is replaced
    columns = columns or train_columns(spec, ds, splits[0], hooks.get("teacher"))
    if cut := _cut_positives(ds, columns):
        hooks["reporter"].on_event(
            f"{cut} of {len(columns['anchor'])} training queries appear verbatim in their "
            "positive and were cut out of it (cut_query_from_positive)"
        )
    processes = train_processes(spec)
    if processes > 1:
        bundle = Bundle(spec, ds, base.model, out, splits, hooks["resume"], columns)
        done = train_distributed(bundle, processes, hooks["reporter"], hooks["should_cancel"])
        # The parent holds the trained model only when a next round mines with it.
        return TrainRun(model=_load_trained(spec, out) if spec.rounds > 1 else None, **vars(done))
    model = start_transformer(spec, base.model, base.st)
    run = train_st(spec, ds, model, base.model, out, splits=splits, columns=columns, **hooks)
    save_trained(run.model, spec, base.model, out)
    return run


def _cut_positives(ds: RetrievalDataset, columns: dict[str, list]) -> int:
    """How many training positives are no document's text: a query was cut out of them."""
    if "positive" not in columns:
        return 0
    texts = {doc.full_text for doc in ds.corpus.values()}
    return sum(text not in texts for text in columns["positive"])


def _load_trained(spec: FinetuneSpec, out: Path) -> SentenceTransformer:
    """The model a run saved in ``out``, loaded back into this process."""
    if spec.method == "colbert":
        from sentence_transformers import MultiVectorEncoder

        return MultiVectorEncoder(str(out), local_files_only=True)
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(out), local_files_only=True)


def start_transformer(
    spec: FinetuneSpec, base: ResolvedModel, st: SentenceTransformer | None = None
) -> SentenceTransformer:
    """The model a full, LoRA or ColBERT run trains (``st``: the base, when already loaded)."""
    if spec.method == "colbert":
        from core.training.multi_vector import start_model

        return start_model(base, spec)
    st = st or load_sentence_transformer(base)
    if spec.method == "lora":
        from core.training.lora import add_lora

        add_lora(st, spec, lora_targets(base.path))
    return st


def save_trained(
    model: SentenceTransformer, spec: FinetuneSpec, base: ResolvedModel, out: Path
) -> None:
    """Write the trained model; a LoRA run keeps its adapter (served) and the merged weights."""
    model.save_pretrained(str(out), create_model_card=False)
    if spec.method == "lora":
        from core.training.lora import save_merged

        base.config.save(out)
        save_merged(out, out / MERGED)


def _train_adapter(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    base: Embedder,
    out: Path,
    splits: tuple[str, str | None],
    hooks: dict,
    cache: EmbeddingCache | None,
):
    from core.training.adapter_training import train_adapter
    from core.training.query_adapter import save_adapter_model

    run = train_adapter(spec, ds, _adapter_input(base), out, splits=splits, cache=cache, **hooks)
    save_adapter_model(base.st, run.adapter, out)
    return run


def _adapter_input(base: Embedder) -> Embedder:
    """The base model as the adapter sees it: its output as it is. A model ending in
    Normalize gives unit vectors either way, so the evaluation's cached (normalized) corpus
    vectors serve as they are."""
    from sentence_transformers.base.modules import Normalize

    unit = isinstance(list(base.st.children())[-1], Normalize)
    config = base.config if unit else replace(base.config, normalize=False)
    raw = ResolvedModel(base.model.ref, base.model.source, base.model.path, config)
    return Embedder(raw, base.st, base.fingerprint)

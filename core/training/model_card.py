"""What a fine-tuned model directory says about itself: a model card and a metrics history."""

from __future__ import annotations

import json
from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.evaluation.metrics import HEADLINE_METRICS
from core.training.spec import FinetuneResult, FinetuneSpec

HISTORY_FILE = "metrics_history.json"
NO_METRICS = ("No validation metrics (no validation split).", "")
METHOD_TEXT = {
    "full": "full fine-tune (every weight trained)",
    "lora": "LoRA adapters (PEFT) on frozen base weights; this directory holds the adapter",
    "adapter": "query-side adapter on frozen base embeddings; document vectors are unchanged",
    "colbert": "ColBERT (late interaction: one vector per token, scored by MaxSim)",
}
METHOD_FIELDS = {
    "full": ("learning_rate",),
    "lora": (
        "lora_learning_rate",
        "lora_rank",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
    ),
    "adapter": ("adapter_learning_rate", "adapter_epochs", "adapter_hidden_dim"),
    "colbert": ("learning_rate", "query_length"),
}
COMMON_FIELDS = (
    "base_model",
    "epochs",
    "batch_size",
    "warmup_ratio",
    "max_seq_length",
    "seed",
    "loss",
    "scale",
    "num_hard_negatives",
    "matryoshka_dims",
    "rounds",
)


def write_history(result: FinetuneResult, spec: FinetuneSpec, out: Path) -> Path:
    path = Path(out) / HISTORY_FILE
    payload = {**result.to_dict(), "spec": spec.to_dict()}
    path.write_text(json.dumps(payload, ensure_ascii=False, indent=1) + "\n", "utf-8")
    return path


def write_card(
    result: FinetuneResult,
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    splits: tuple[str, str | None],
    out: Path,
) -> Path:
    """README.md: base model, data, method, hyper-parameters and before/after metrics."""
    train, val = splits
    negatives = sum(1 for q in ds.qrels.get(train, {}) if ds.negatives.get(q))
    return write_readme(
        Path(out),
        intro=f"Fine-tuned from `{spec.base_model}` with EmbedTune: {METHOD_TEXT[spec.method]}.",
        data=[
            f"- dataset `{ds.name or '?'}` ({ds.source_format or 'unknown format'}), "
            f"{len(ds.corpus)} documents",
            f"- training split `{train}`: {len(ds.qrels.get(train, {}))} queries, "
            f"{result.train_examples} examples; {negatives} queries with mined hard negatives",
            f"- validation split `{val}`: {len(ds.qrels.get(val, {}))} queries"
            if val
            else "- no validation split",
        ],
        settings=[(name, getattr(spec, name)) for name in _card_fields(spec)],
        results=[*_metrics_table(result, val), *_rounds_table(result)],
        use=[
            "from sentence_transformers import SentenceTransformer",
            f'model = SentenceTransformer("{Path(out).name}")',
            "queries = model.encode_query([...])  # instructions: see embedtune.json",
            "documents = model.encode_document([...])",
        ],
    )


def write_readme(
    out: Path,
    *,
    intro: str,
    data: list[str],
    settings: list[tuple[str, object]],
    results: list[str],
    use: list[str],
) -> Path:
    """``out/README.md``, the layout of every model card: a title (the directory's name),
    ``intro``, the ``data`` lines, the hyper-parameter table, ``results`` and a Python
    snippet (``use``)."""
    lines = [
        f"# {out.name}",
        "",
        intro,
        "",
        "## Data",
        *data,
        "",
        "## Hyper-parameters",
        "| setting | value |",
        "|---|---|",
        *(f"| {name} | {value} |" for name, value in settings),
        "",
        *results,
        "## Use",
        "```python",
        *use,
        "```",
        "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines), "utf-8")
    return path


def _card_fields(spec: FinetuneSpec) -> tuple[str, ...]:
    fields = (*COMMON_FIELDS, *METHOD_FIELDS[spec.method])
    if spec.loss == "cached_mnrl":
        fields = (*fields, "mini_batch_size")
    if spec.teacher_reranker is not None:
        fields = (*fields, "teacher_reranker")
    return fields


def _rounds_table(result: FinetuneResult) -> list[str]:
    """With re-mining, each round's validation score and what its mining changed."""
    if len(result.rounds) < 2:
        return []
    rows = [
        f"| {r['round']} | {r['metrics_after'].get('ndcg@10', 0):.4f} | "
        f"{'base model' if r['mined'] is None else r['mined']['queries_changed']} | "
        f"{r['train_seconds']:.0f} s |"
        for r in result.rounds
    ]
    return [
        "## Rounds (each mines hard negatives with the previous round's model)",
        "| round | val ndcg@10 | queries whose negatives changed | training |",
        "|---|---|---|---|",
        *rows,
        "",
    ]


def _metrics_table(result: FinetuneResult, val: str | None) -> list[str]:
    if not val or not result.metrics_after:
        return list(NO_METRICS)
    rows = [
        f"| {m} | {result.metrics_before.get(m, 0):.4f} | {result.metrics_after[m]:.4f} | "
        f"{result.metrics_after[m] - result.metrics_before.get(m, 0):+.4f} |"
        for m in HEADLINE_METRICS
        if m in result.metrics_after
    ]
    return [
        f"## Metrics on `{val}` (best step {result.best_step})",
        "| metric | before | after | change |",
        "|---|---|---|---|",
        *rows,
        "",
        f"Training: {result.train_seconds:.0f} s, {result.samples_per_second:.1f} samples/s.",
        "",
    ]

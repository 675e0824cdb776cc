"""The model card of a fine-tuned reranker: data, settings, before/after and the verdict."""

from __future__ import annotations

from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.reranking.fusion import verdict
from core.reranking.spec import RerankResult, RerankSpec
from core.training.model_card import NO_METRICS, write_readme

CARD_FIELDS = (
    "base_model",
    "method",
    "loss",
    "epochs",
    "learning_rate",
    "batch_size",
    "warmup_ratio",
    "max_seq_length",
    "num_negatives",
    "teacher_model",
    "candidates",
    "seed",
)
LORA_FIELDS = ("lora_rank", "lora_alpha", "lora_dropout", "lora_target_modules")
CARD_METRICS = ("ndcg@10", "mrr@10", "map@10", "recall@10")


def write_rerank_card(
    result: RerankResult,
    spec: RerankSpec,
    ds: RetrievalDataset,
    splits: tuple[str, str | None],
    out: Path,
) -> Path:
    """README.md: what it was trained from and on, and how it reranked validation."""
    train, val = splits
    fields = CARD_FIELDS + (LORA_FIELDS if spec.method == "lora" else ())
    return write_readme(
        Path(out),
        intro=f"A cross-encoder reranker fine-tuned from `{spec.base_model}` with EmbedTune "
        f"({spec.loss} loss, {spec.method}).",
        data=[
            f"- dataset `{ds.name or '?'}`, {len(ds.corpus)} documents",
            f"- training split `{train}`: {len(ds.qrels.get(train, {}))} queries, "
            f"{result.train_examples} training rows",
            f"- validation split `{val}`: {len(ds.qrels.get(val, {}))} queries, each reranking "
            f"the first stage's top {spec.candidates}"
            if val
            else "- no validation split",
        ],
        settings=[(name, getattr(spec, name)) for name in fields],
        results=_metrics(result, val),
        use=[
            "from sentence_transformers import CrossEncoder",
            f'model = CrossEncoder("{Path(out).name}")',
            'scores = model.predict([("a query", "a document"), ...])',
        ],
    )


def _metrics(result: RerankResult, val: str | None) -> list[str]:
    if not val or not result.metrics_after:
        return list(NO_METRICS)
    fusion = result.fusion
    first, fused = fusion.get("first_stage", {}), fusion.get("fused", {})
    rows = [
        f"| {m} | {first.get(m, 0):.4f} | "
        f"{result.metrics_before.get(m, 0):.4f} | {result.metrics_after[m]:.4f} | "
        f"{fused.get(m, 0):.4f} |"
        for m in CARD_METRICS
        if m in result.metrics_after
    ]
    weight = float(fusion.get("weight", 0))
    return [
        f"## Reranking `{val}` (best step {result.best_step})",
        f"First stage: `{fusion.get('first_stage_model', '?')}`. Fusion weight {weight:.2f} "
        "(0: first stage only), chosen on this split.",
        "",
        "| metric | first stage | reranked before | reranked after | fused |",
        "|---|---|---|---|---|",
        *rows,
        "",
        f"**Verdict:** {verdict(weight, first.get('ndcg@10'), fused.get('ndcg@10'))}.",
        "",
        f"Training: {result.train_seconds:.0f} s.",
        "",
    ]

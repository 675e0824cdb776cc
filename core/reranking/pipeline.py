"""An embedder as the first stage and a reranker after it: what ``eval --reranker`` runs."""

from __future__ import annotations

from dataclasses import replace

from core.datasets.model import RetrievalDataset
from core.datasets.split import split_by_query
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.report import EvalReport
from core.indexing.faiss_index import VectorIndex
from core.indexing.token_index import TokenIndex
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.reranking.evaluate import Progress, RerankReport, evaluate_reranked
from core.reranking.reranker import Reranker

VAL = "val"


def fusion_split(
    ds: RetrievalDataset, val_split: str | None, test_split: str, val_fraction: float, seed: int
) -> tuple[RetrievalDataset, str | None]:
    """The dataset and the split the fusion weight is chosen on: ``val_split`` when the
    dataset has it; else ``val`` held out of ``train`` as the fine-tunes hold it out (by query,
    the same seed and fraction); else None (the reranker's saved weight is used)."""
    if (val_split or VAL) in ds.qrels:
        return ds, val_split or VAL
    if val_split is None and "train" in ds.qrels and test_split != "train":
        return split_by_query(ds, source="train", val_fraction=val_fraction, seed=seed), VAL
    return ds, None


def rerank_embedder(
    ds: RetrievalDataset,
    embedder: Embedder,
    reranker: Reranker,
    *,
    split: str,
    top_k: int = 100,
    val_split: str | None = None,
    val_fraction: float = 0.2,
    seed: int = 0,
    first_report: EvalReport | None = None,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
    index: VectorIndex | TokenIndex | None = None,
) -> RerankReport:
    """Rerank the embedder's top ``top_k`` on ``split``; the fusion weight comes from the
    validation split (``fusion_split``) or, without one, from the reranker's fine-tune.
    ``first_report``: the embedder's own report on ``split``, reused when it ranked enough.
    ``index``: the first stage searches this stored index (e.g. NUDGE's) with the embedder's
    query vectors instead of encoding the corpus."""
    tuned, val = fusion_split(ds, val_split, split, val_fraction, seed)
    spec = EvalSpec(split=split, top_k=top_k, count_truncated=False)
    if first_report is not None and all(
        len(r.top_ids) >= min(top_k, first_report.num_documents)
        for r in first_report.per_query.values()
    ):
        test_run = first_report.run()
    else:
        test_run = evaluate(ds, embedder, spec, cache=cache, index=index).run()
    val_run = (
        evaluate(tuned, embedder, replace(spec, split=val), cache=cache, index=index).run()
        if val
        else None
    )
    return evaluate_reranked(
        tuned,
        reranker,
        test_run,
        split=split,
        first_stage=embedder.model.ref,
        top_k=top_k,
        first_val=val_run,
        val_split=val,
        weight=None if val else reranker.fusion_weight(),
        progress=progress,
        cache=cache,
    )

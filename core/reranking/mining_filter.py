"""Positive-aware mining: drop negatives a reranker scores close to or above the positives.

A bi-encoder's mined "negatives" include unlabeled positives (see ``MiningSpec``). A
cross-encoder reads query and document together, so its score is a second opinion: each
negative whose reranker score exceeds ``p - |p| * margin`` (``p``: the query's lowest positive
score by the same reranker) is dropped, as sentence-transformers' margin filter does with the
retriever's scores. Mine more candidates than needed (``OVERSAMPLE``) so that the filter leaves
enough; the kept ones stay in mined order, cut to ``keep``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from core.datasets.model import RetrievalDataset
from core.models.cache import EmbeddingCache
from core.reranking.reranker import Reranker
from core.reranking.teachers import reranker_scores

OVERSAMPLE = 2  # negatives mined per one kept when the reranker filter follows


@dataclass(frozen=True)
class RerankFilterReport:
    """How many negatives the reranker looked at, dropped and kept."""

    reranker: str
    margin: float
    queries: int
    scored: int
    dropped: int
    kept: int
    queries_emptied: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def filter_with_reranker(
    ds: RetrievalDataset,
    split: str,
    reranker: Reranker,
    *,
    margin: float = 0.05,
    keep: int | None = None,
    cache: EmbeddingCache | None = None,
) -> tuple[RetrievalDataset, RerankFilterReport]:
    """``ds`` whose ``split`` queries keep only the negatives the reranker scores below their
    positives by ``margin`` (relative), at most ``keep`` each; other queries are untouched."""
    negatives = dict(ds.negatives)
    scored = dropped = emptied = queries = 0
    for qid, judged in ds.split_qrels(split).items():
        positives = [d for d, g in judged.items() if g > 0 and d in ds.corpus]
        candidates = [d for d in ds.negatives.get(qid, []) if d in ds.corpus]
        if not positives or not candidates or qid not in ds.queries:
            continue
        queries += 1
        text = ds.queries[qid].text
        pairs = [(text, ds.corpus[d].full_text) for d in [*positives, *candidates]]
        scores = reranker_scores(reranker, pairs, cache).tolist()
        lowest = min(scores[: len(positives)])
        ceiling = lowest - abs(lowest) * margin
        kept = [
            d for d, s in zip(candidates, scores[len(positives) :], strict=True) if s <= ceiling
        ]
        scored += len(candidates)
        dropped += len(candidates) - len(kept)
        emptied += not kept
        negatives[qid] = kept[:keep] if keep is not None else kept
    report = RerankFilterReport(
        reranker=reranker.model.ref,
        margin=margin,
        queries=queries,
        scored=scored,
        dropped=dropped,
        kept=sum(len(negatives.get(q, [])) for q in ds.split_qrels(split)),
        queries_emptied=emptied,
    )
    return replace(ds, negatives={q: n for q, n in negatives.items() if n}), report

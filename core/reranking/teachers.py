"""Teacher scores for distillation: a bi-encoder's cosine scores, or a reranker's, cached.

A reranker teaches a bi-encoder (MarginMSE / KL-divergence fine-tunes) and a bi-encoder can
teach a cross-encoder (MarginMSE rerank fine-tunes). Each pair is scored once: bi-encoder
scores come from the embedding cache, reranker scores from a score cache keyed by the
reranker's fingerprint and max length (the same on-disk store, one float per pair).
"""

from __future__ import annotations

import json

import numpy as np

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import encode_cached
from core.models.cache import CacheKey, EmbeddingCache
from core.models.embedder import Embedder
from core.reranking.data import Teacher
from core.reranking.reranker import Reranker

RERANK_SCORES = "rerank-scores"  # the cache key's instruction slot: what the entries are


def embedder_teacher(
    ds: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache | None = None
) -> Teacher:
    """Cosine (dot product of the model's normalized vectors) of each (query, document)."""

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        queries = list(dict.fromkeys(q for q, _ in pairs))
        docs = list(dict.fromkeys(d for _, d in pairs))
        qvec, _ = encode_cached(embedder, [ds.queries[q].text for q in queries], "query", cache)
        dvec, _ = encode_cached(embedder, [ds.corpus[d].full_text for d in docs], "document", cache)
        qrow = {q: i for i, q in enumerate(queries)}
        drow = {d: i for i, d in enumerate(docs)}
        return [float(qvec[qrow[q]] @ dvec[drow[d]]) for q, d in pairs]

    return score


def reranker_scores(
    reranker: Reranker, pairs: list[tuple[str, str]], cache: EmbeddingCache | None = None
) -> np.ndarray:
    """The reranker's score of each (query text, document text) pair, computed once per
    (reranker version, max length, pair) when ``cache`` is given."""
    if cache is None:
        return reranker.score(pairs)
    key = CacheKey(reranker.fingerprint, RERANK_SCORES, reranker.max_length, False)
    texts = [json.dumps(pair, ensure_ascii=False) for pair in pairs]

    def compute(missing: list[str]) -> np.ndarray:
        return reranker.score([tuple(json.loads(t)) for t in missing]).reshape(-1, 1)

    values, _ = cache.get_or_encode(key, texts, compute)
    return values.reshape(len(pairs))


def reranker_teacher(
    ds: RetrievalDataset, reranker: Reranker, cache: EmbeddingCache | None = None
) -> Teacher:
    """The reranker's scores of (query id, document id) pairs, cached as ``reranker_scores``."""

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        texts = [(ds.queries[q].text, ds.corpus[d].full_text) for q, d in pairs]
        return reranker_scores(reranker, texts, cache).tolist()

    return score

"""Retrieval evaluation: encode (cached), index with Faiss, search, score against qrels."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.metrics import K_VALUES, evaluate_run, rank
from core.evaluation.report import EvalReport, QueryResult
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.indexing.token_index import TokenIndex
from core.models.cache import Allocate, CacheKey, EmbeddingCache
from core.models.embedder import Embedder, Side
from core.models.multi_vector import MultiVectorEmbedder

StageProgress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)`` with stage in encode_corpus, encode_queries, index."""


@dataclass(frozen=True)
class EvalSpec:
    split: str = "test"
    k_values: tuple[int, ...] = K_VALUES
    top_k: int = 100  # documents retrieved and saved per query
    index: IndexSpec = field(default_factory=IndexSpec)
    count_truncated: bool = True  # tokenize every text to report how many are cut (~2 s/5k docs)


def cache_key(embedder: Embedder | MultiVectorEmbedder, side: Side) -> CacheKey:
    """What the cache keys ``embedder``'s vectors of one side by: the fingerprint of the
    modules that make that side (a query adapter's documents: its base model's), else the
    model's."""
    by_side = getattr(embedder, "side_fingerprint", None)
    return CacheKey(
        by_side(side) if by_side is not None else embedder.fingerprint,
        embedder.instruction(side),
        embedder.max_seq_length,
        embedder.config.normalize,
    )


def encode_cached(
    embedder: Embedder | MultiVectorEmbedder,
    texts: list[str],
    side: Side,
    cache: EmbeddingCache | None,
    progress: Callable[[int, int], None] | None = None,
    out: Allocate | None = None,
) -> tuple[np.ndarray, int]:
    """Embeddings of ``texts`` and how many were served from the cache (written into the
    array ``out`` allocates, e.g. a memory-mapped file, when given)."""
    if cache is None:
        return embedder.encode(texts, side, progress), 0
    vectors, stats = cache.get_or_encode(
        cache_key(embedder, side),
        texts,
        lambda miss: embedder.encode(miss, side, progress),
        out,
        side=side,
    )
    if progress:
        progress(len(texts), len(texts))
    return vectors, stats.hits


def evaluate(
    dataset: RetrievalDataset,
    embedder: Embedder | MultiVectorEmbedder,
    spec: EvalSpec = EvalSpec(),
    *,
    cache: EmbeddingCache | None = None,
    progress: StageProgress | None = None,
    index: VectorIndex | TokenIndex | None = None,
) -> EvalReport:
    """Score ``embedder`` on the judged queries of ``spec.split``: Faiss search for dense
    vectors, exact MaxSim for a late-interaction model's token vectors. ``index``: a stored
    index of the corpus (e.g. NUDGE's tuned vectors) searched instead of encoding it."""
    qrels = dataset.split_qrels(spec.split)
    judged = {
        q: r for q, r in qrels.items() if q in dataset.queries and any(g > 0 for g in r.values())
    }
    if not judged or not dataset.corpus:
        raise InvalidInput(
            f"split '{spec.split}' has no query with a relevant document",
            code="no_judged_queries",
            param="split",
        )
    timings: dict[str, float] = {}
    stage = _stage_reporter(progress)

    t0 = time.perf_counter()
    doc_ids = list(dataset.corpus)
    doc_texts = [dataset.corpus[d].full_text for d in doc_ids]
    if index is None:
        doc_vecs, doc_hits = encode_cached(
            embedder, doc_texts, "document", cache, stage("encode_corpus")
        )
    else:
        _check_covers(index, doc_ids)
        doc_hits = len(set(doc_texts))  # nothing encoded: the stored index holds the corpus
    timings["encode_corpus"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    query_ids = list(judged)
    query_vecs, _ = encode_cached(
        embedder,
        [dataset.queries[q].text for q in query_ids],
        "query",
        cache,
        stage("encode_queries"),
    )
    timings["encode_queries"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    if index is None:
        index = build_index(doc_vecs, doc_ids, spec.index, progress=stage("index"))
    timings["index"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    top_ids, top_scores = index.search(query_vecs, min(spec.top_k, len(doc_ids)))
    run = {
        q: dict(zip(ids, map(float, scores), strict=False))
        for q, ids, scores in zip(query_ids, top_ids, top_scores, strict=True)
    }
    timings["search"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    means, per_query = evaluate_run(run, judged, spec.k_values)
    timings["metrics"] = time.perf_counter() - t0
    return EvalReport(
        model=embedder.model.ref,
        model_fingerprint=embedder.fingerprint,
        dataset=dataset.name,
        split=spec.split,
        num_queries=len(judged),
        num_documents=len(doc_ids),
        metrics=means,
        per_query={q: _query_result(run[q], judged[q], per_query[q]) for q in query_ids},
        timings=timings,
        cache={"corpus_hits": doc_hits, "corpus_misses": len(set(doc_texts)) - doc_hits},
        model_config={**asdict(embedder.config), "max_seq_length": embedder.max_seq_length},
        precision=getattr(embedder, "precision", "fp32"),
        runtime="onnx" if getattr(embedder, "runtime", None) is not None else "torch",
        truncated=truncated_counts(
            embedder, doc_texts, [dataset.queries[q].text for q in query_ids]
        )
        if spec.count_truncated
        else {},
    )


def _check_covers(index: VectorIndex | TokenIndex, doc_ids: list[str]) -> None:
    """A stored index must hold exactly the dataset's corpus, or its ranks mean nothing."""
    if set(index.ids) != set(doc_ids):
        raise InvalidInput(
            f"the index holds {len(index.ids)} documents, not the dataset's {len(doc_ids)}",
            code="index_corpus_mismatch",
            param="index_id",
        )


def build_index(
    vectors: np.ndarray,
    ids: list[str],
    spec: IndexSpec,
    progress: Callable[[int, int], None] | None = None,
) -> VectorIndex | TokenIndex:
    """A Faiss index of dense vectors, or a MaxSim token index of (n, tokens, dim) ones."""
    if vectors.ndim == 3:
        return TokenIndex.build(vectors, ids, progress)
    return VectorIndex.build(vectors, ids, spec, progress=progress)


def truncated_counts(
    embedder: Embedder, documents: list[str], queries: list[str]
) -> dict[str, int]:
    """How many documents and queries exceed the model's max sequence length (and are cut);
    empty for an embedder that cannot count tokens."""
    count = getattr(embedder, "count_tokens", None)
    if count is None:
        return {}
    limit = embedder.max_seq_length
    return {
        "documents": sum(n > limit for n in count(documents, "document")),
        "queries": sum(n > limit for n in count(queries, "query")),
    }


def _query_result(
    scores: dict[str, float], relevant: dict[str, int], metrics: dict[str, float]
) -> QueryResult:
    ranked = rank(scores)
    position = {d: i + 1 for i, d in enumerate(ranked)}
    return QueryResult(
        metrics=metrics,
        relevant_ranks={d: position.get(d) for d, g in relevant.items() if g > 0},
        top_ids=ranked,
        top_scores=[scores[d] for d in ranked],
    )


def _stage_reporter(progress: StageProgress | None):
    def for_stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None:
            return None
        return lambda done, total: progress(name, done, total)

    return for_stage

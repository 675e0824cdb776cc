"""The round-trip filter's retrieval: the base model's top-k chunks for each query."""

from __future__ import annotations

from collections.abc import Callable

from core.datasets.model import Document
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.synthesis.filters import Ranker

Progress = Callable[[str, int, int], None]


def base_model_ranker(
    embedder: Embedder,
    corpus: dict[str, Document],
    k: int,
    *,
    cache: EmbeddingCache | None = None,
    progress: Progress | None = None,
) -> Ranker:
    """Encode the corpus once (cached) and return ``queries -> top-k chunk ids``."""
    ids = list(corpus)
    report = (lambda stage: lambda d, t: progress(stage, d, t)) if progress else None
    vectors, _ = encode_cached(
        embedder,
        [corpus[i].full_text for i in ids],
        "document",
        cache,
        report("encode_corpus") if report else None,
    )
    index = VectorIndex.build(vectors, ids, IndexSpec(kind="flat"))

    def rank(queries: list[str]) -> list[list[str]]:
        encoded = embedder.encode(queries, "query", report("encode_queries") if report else None)
        hits, _ = index.search(encoded, k)
        return hits

    return rank

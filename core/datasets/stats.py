"""Summary figures of a dataset: sizes, judgments per split, text lengths and read warnings."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from core.datasets.checks import dataset_checks
from core.datasets.model import RetrievalDataset

CountTokens = Callable[[Sequence[str], Literal["query", "document"]], list[int]]
"""Tokens per text as a model sees them (instruction and special tokens included)."""


@dataclass(frozen=True)
class Lengths:
    """Percentiles (linear interpolation) and maximum of a set of text lengths."""

    p50: float
    p90: float
    p99: float
    max: int

    @classmethod
    def of(cls, values: Iterable[int]) -> Lengths:
        ordered = sorted(values)
        if not ordered:
            return cls(0.0, 0.0, 0.0, 0)
        return cls(*(_percentile(ordered, q) for q in (0.5, 0.9, 0.99)), ordered[-1])


HISTOGRAM_EDGES = (0, 4, 8, 16, 32, 64, 128, 256, 512, 1024)  # words; the last bin is open


@dataclass(frozen=True)
class Histogram:
    """How many texts have a length in [edges[i], edges[i + 1]) (the last bin: edges[-1] and
    more)."""

    edges: tuple[int, ...]
    counts: tuple[int, ...]

    @classmethod
    def of(cls, values: Iterable[int], edges: tuple[int, ...] = HISTOGRAM_EDGES) -> Histogram:
        counts = [0] * len(edges)
        for value in values:
            counts[bisect.bisect_right(edges, value) - 1] += 1
        return cls(edges, tuple(counts))


@dataclass(frozen=True)
class SplitStats:
    judged_queries: int
    qrels_pairs: int
    mean_relevant: float  # documents with grade > 0 per judged query


@dataclass(frozen=True)
class ModelLengths:
    """Text lengths in one model's tokens and how many exceed its maximum (and get truncated)."""

    model: str
    max_seq_length: int
    doc_tokens: Lengths
    query_tokens: Lengths
    documents_over_max: int
    queries_over_max: int

    @classmethod
    def of(
        cls, ds: RetrievalDataset, *, model: str, max_seq_length: int, count: CountTokens
    ) -> ModelLengths:
        docs = count([doc.full_text for doc in ds.corpus.values()], "document")
        queries = count([query.text for query in ds.queries.values()], "query")
        return cls(
            model=model,
            max_seq_length=max_seq_length,
            doc_tokens=Lengths.of(docs),
            query_tokens=Lengths.of(queries),
            documents_over_max=sum(n > max_seq_length for n in docs),
            queries_over_max=sum(n > max_seq_length for n in queries),
        )


@dataclass(frozen=True)
class DatasetStats:
    documents: int
    queries: int
    splits: dict[str, SplitStats]
    doc_chars: Lengths  # documents are measured as title + text
    doc_tokens: Lengths  # whitespace-separated words (model tokens: ``model_lengths``)
    query_chars: Lengths
    query_tokens: Lengths
    unjudged_queries: int  # queries judged in no split
    never_relevant_documents: int  # documents relevant to no query in any split
    negatives: int  # (query, negative document) pairs
    scored_pairs: int  # (query, document) pairs in ``ds.scores``
    warnings: list[dict[str, object]] = field(default_factory=list)  # see ``ds.warnings``
    model_lengths: ModelLengths | None = None  # lengths in a model's tokens, when one is given
    # Words per text: {"documents": Histogram, "queries": Histogram}.
    length_histograms: dict[str, Histogram] = field(default_factory=dict)
    # Data checks (``core.datasets.checks``): per check its count and first examples.
    checks: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def dataset_stats(ds: RetrievalDataset, model_lengths: ModelLengths | None = None) -> DatasetStats:
    """Figures of ``ds``; ``doc_tokens`` / ``query_tokens`` count words, ``model_lengths`` (from
    ``ModelLengths.of``) a model's tokens."""
    judged = {qid for qrels in ds.qrels.values() for qid in qrels}
    relevant = {
        did
        for qrels in ds.qrels.values()
        for docs in qrels.values()
        for did, grade in docs.items()
        if grade > 0
    }
    doc_texts = [doc.full_text for doc in ds.corpus.values()]
    query_texts = [query.text for query in ds.queries.values()]
    doc_words = [len(t.split()) for t in doc_texts]
    query_words = [len(t.split()) for t in query_texts]
    return DatasetStats(
        documents=len(ds.corpus),
        queries=len(ds.queries),
        splits={split: _split_stats(qrels) for split, qrels in sorted(ds.qrels.items())},
        doc_chars=Lengths.of(len(t) for t in doc_texts),
        doc_tokens=Lengths.of(doc_words),
        query_chars=Lengths.of(len(t) for t in query_texts),
        query_tokens=Lengths.of(query_words),
        unjudged_queries=len(ds.queries.keys() - judged),
        never_relevant_documents=len(ds.corpus.keys() - relevant),
        negatives=sum(len(docs) for docs in ds.negatives.values()),
        scored_pairs=sum(len(docs) for docs in ds.scores.values()),
        warnings=[w.as_dict() for w in ds.warnings],
        model_lengths=model_lengths,
        length_histograms={
            "documents": Histogram.of(doc_words),
            "queries": Histogram.of(query_words),
        },
        checks=dataset_checks(ds),
    )


def _split_stats(qrels: dict[str, dict[str, int]]) -> SplitStats:
    relevant = sum(grade > 0 for docs in qrels.values() for grade in docs.values())
    return SplitStats(
        judged_queries=len(qrels),
        qrels_pairs=sum(len(docs) for docs in qrels.values()),
        mean_relevant=relevant / len(qrels) if qrels else 0.0,
    )


def _percentile(ordered: list[int], q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

"""Summary figures of a dataset: sizes, judgments per split and text lengths."""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass

from core.datasets.model import RetrievalDataset


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


@dataclass(frozen=True)
class SplitStats:
    judged_queries: int
    qrels_pairs: int
    mean_relevant: float  # documents with grade > 0 per judged query


@dataclass(frozen=True)
class DatasetStats:
    documents: int
    queries: int
    splits: dict[str, SplitStats]
    doc_chars: Lengths  # documents are measured as title + text
    doc_tokens: Lengths  # whitespace-separated tokens
    query_chars: Lengths
    query_tokens: Lengths
    unjudged_queries: int  # queries judged in no split
    never_relevant_documents: int  # documents relevant to no query in any split
    negatives: int  # (query, negative document) pairs
    scored_pairs: int  # (query, document) pairs in ``ds.scores``

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def dataset_stats(ds: RetrievalDataset) -> DatasetStats:
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
    return DatasetStats(
        documents=len(ds.corpus),
        queries=len(ds.queries),
        splits={split: _split_stats(qrels) for split, qrels in sorted(ds.qrels.items())},
        doc_chars=Lengths.of(len(t) for t in doc_texts),
        doc_tokens=Lengths.of(len(t.split()) for t in doc_texts),
        query_chars=Lengths.of(len(t) for t in query_texts),
        query_tokens=Lengths.of(len(t.split()) for t in query_texts),
        unjudged_queries=len(ds.queries.keys() - judged),
        never_relevant_documents=len(ds.corpus.keys() - relevant),
        negatives=sum(len(docs) for docs in ds.negatives.values()),
        scored_pairs=sum(len(docs) for docs in ds.scores.values()),
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

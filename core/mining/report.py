"""The mining report, and the tally that builds it one query at a time."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.mining.select import FILTERS, Selection

CANDIDATE_SAMPLE = 1_000_000
"""Candidate scores kept for the quantiles at most (every n-th query's); the mean is exact."""


@dataclass(frozen=True)
class ScoreSummary:
    """Count, mean and 10th / 50th / 90th percentiles of a set of scores."""

    count: int
    mean: float | None  # None when there are no scores
    p10: float | None
    p50: float | None
    p90: float | None

    @classmethod
    def of(
        cls, values: np.ndarray, *, count: int | None = None, mean: float | None = None
    ) -> ScoreSummary:
        """Summary of ``values``; ``count`` and ``mean`` override when ``values`` is a sample."""
        values = np.asarray(values, dtype=np.float64)
        if not len(values):
            return cls(count or 0, None, None, None, None)
        p10, p50, p90 = np.percentile(values, [10, 50, 90]).tolist()
        return cls(
            count if count is not None else len(values),
            mean if mean is not None else float(values.mean()),
            p10,
            p50,
            p90,
        )


@dataclass(frozen=True)
class MiningReport:
    """What mining did: negatives per query, score distributions, what each filter removed.

    ``scores`` has ``positives`` (query-positive pairs of the split), ``negatives`` (kept) and
    ``candidates`` (everything retrieved). ``removed`` counts each dropped candidate once,
    under the first filter that applied; ``candidates == negatives + sum(removed)``.
    """

    model: str
    model_fingerprint: str
    dataset: str
    split: str
    num_documents: int
    queries: int
    queries_short: int  # got fewer than num_negatives
    queries_without_negatives: int
    negatives: int
    negatives_per_query: dict[str, float]  # mean, min, max
    candidates: int
    removed: dict[str, int]
    scores: dict[str, ScoreSummary]
    timings: dict[str, float]
    spec: dict[str, Any]
    cache: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class MiningTally:
    """Accumulates selections in query order; memory grows with negatives, not candidates."""

    def __init__(self, num_queries: int, num_negatives: int, range_max: int) -> None:
        self.num_negatives = num_negatives
        self.stride = max(1, -(-num_queries * range_max // CANDIDATE_SAMPLE))
        self.seen = 0
        self.counts: list[int] = []
        self.removed = dict.fromkeys(FILTERS, 0)
        self.positive_scores: list[float] = []
        self.negative_scores: list[float] = []
        self.candidate_sum = 0.0
        self.candidate_count = 0
        self.candidate_sample: list[np.ndarray] = []

    def add(self, selection: Selection, scores: np.ndarray, positive_scores: list[float]) -> None:
        """Record one query: its selection, its candidates' scores and its positives' scores."""
        scores = np.asarray(scores, dtype=np.float64)[: selection.candidates]
        if self.seen % self.stride == 0:
            self.candidate_sample.append(scores)
        self.seen += 1
        self.candidate_sum += float(scores.sum())
        self.candidate_count += len(scores)
        self.counts.append(len(selection.ids))
        self.negative_scores.extend(selection.scores)
        self.positive_scores.extend(positive_scores)
        for name, count in selection.removed.items():
            self.removed[name] += count

    def summary(self) -> dict[str, Any]:
        """The tallied fields of :class:`MiningReport`."""
        counts = np.asarray(self.counts or [0])
        sample = np.concatenate(self.candidate_sample) if self.candidate_sample else np.zeros(0)
        mean = self.candidate_sum / self.candidate_count if self.candidate_count else None
        return {
            "queries": len(self.counts),
            "queries_short": int((counts < self.num_negatives).sum()) if self.counts else 0,
            "queries_without_negatives": int((counts == 0).sum()) if self.counts else 0,
            "negatives": int(counts.sum()),
            "negatives_per_query": {
                "mean": float(counts.mean()),
                "min": int(counts.min()),
                "max": int(counts.max()),
            },
            "candidates": self.candidate_count,
            "removed": dict(self.removed),
            "scores": {
                "positives": ScoreSummary.of(np.asarray(self.positive_scores)),
                "negatives": ScoreSummary.of(np.asarray(self.negative_scores)),
                "candidates": ScoreSummary.of(sample, count=self.candidate_count, mean=mean),
            },
        }

"""The mining report, and the tally that builds it one query at a time."""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np

from core.mining.select import FILTERS, Selection

CANDIDATE_SAMPLE = 1_000_000
"""Candidate scores kept for the quantiles at most (every n-th query's); the mean is exact."""
REVIEW_SIZE = 50  # mined negatives listed for review, those scored closest to a positive
REVIEW_CHARS = 1000  # of each text in the review list


@dataclass(frozen=True)
class ReviewItem:
    """A mined negative scored close to its query's positive: maybe an unlabeled positive.

    ``margin`` is the positive's score minus the negative's, the positive being the query's
    lowest-scored one (the one that sets the margin ceiling); texts are cut to
    ``REVIEW_CHARS``."""

    query_id: str
    positive_id: str
    negative_id: str
    positive_score: float
    negative_score: float
    margin: float
    rank: int
    query: str = ""
    positive: str = ""
    negative: str = ""

    def with_texts(self, queries: Mapping[str, str], documents: Mapping[str, str]) -> ReviewItem:
        cut = REVIEW_CHARS
        return replace(
            self,
            query=queries[self.query_id][:cut],
            positive=documents[self.positive_id][:cut],
            negative=documents[self.negative_id][:cut],
        )


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
    # The REVIEW_SIZE negatives with the smallest margin to a positive, smallest first.
    review: list[ReviewItem] = field(default_factory=list)

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
        self._closest: list[tuple[float, int, ReviewItem]] = []  # a max-heap on the margin
        self._pushed = 0  # breaks ties: earlier queries first

    def add(
        self,
        selection: Selection,
        scores: np.ndarray,
        positive_scores: list[float],
        *,
        query_id: str = "",
        positive_ids: list[str] | None = None,
    ) -> None:
        """Record one query: its selection, its candidates' scores and its positives' scores
        (of ``positive_ids``, which the review list names)."""
        if positive_ids:
            self._review(selection, positive_scores, query_id, positive_ids)
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

    def _review(
        self, selection: Selection, positive_scores: list[float], qid: str, positive_ids: list[str]
    ) -> None:
        low = int(np.argmin(positive_scores))
        for did, rank, score in zip(selection.ids, selection.ranks, selection.scores, strict=True):
            margin = positive_scores[low] - score
            if len(self._closest) == REVIEW_SIZE and -self._closest[0][0] <= margin:
                continue
            item = ReviewItem(
                qid, positive_ids[low], did, positive_scores[low], score, margin, rank
            )
            self._pushed += 1
            entry = (-margin, -self._pushed, item)
            if len(self._closest) < REVIEW_SIZE:
                heapq.heappush(self._closest, entry)
            else:
                heapq.heapreplace(self._closest, entry)

    def review(self) -> list[ReviewItem]:
        """The negatives closest to a positive, smallest margin first (without texts)."""
        return [item for _, _, item in sorted(self._closest, key=lambda e: (-e[0], -e[1]))]

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

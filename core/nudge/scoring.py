"""Exact inner-product search for a fixed set of queries while some documents move.

The top ``k`` among documents that never move is computed once; each candidate step then
scores only the moved documents and merges, so trying many steps costs little.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.datasets.model import Qrels
from core.evaluation.metrics import Run, evaluate_run, rank
from core.evaluation.report import QueryResult

DOC_CHUNK = 65_536  # documents scored per matrix product, bounding memory on large corpora


def top_k(queries: np.ndarray, docs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(scores, row indices) of the ``k`` best documents per query, best first."""
    n = len(queries)
    best_s = np.full((n, 0), -np.inf, np.float32)
    best_i = np.zeros((n, 0), np.int64)
    for start in range(0, len(docs), DOC_CHUNK):
        scores = queries @ docs[start : start + DOC_CHUNK].T
        idx = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        best_s, best_i = _keep(np.hstack([best_s, scores]), np.hstack([best_i, idx]), k)
    return best_s, best_i


def _keep(scores: np.ndarray, idx: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k else idx[:, :0]
    s, i = np.take_along_axis(scores, part, 1), np.take_along_axis(idx, part, 1)
    order = np.argsort(-s, axis=1, kind="stable")
    return np.take_along_axis(s, order, 1), np.take_along_axis(i, order, 1)


class MovingSearch:
    """Top-``k`` search of ``queries`` over ``base`` documents of which ``moved`` change."""

    def __init__(
        self,
        queries: np.ndarray,
        base: np.ndarray,
        moved: np.ndarray,
        k: int,
    ) -> None:
        self.queries, self.k = queries, k
        self.moved = np.flatnonzero(moved)
        fixed = np.flatnonzero(~moved)
        scores, rows = top_k(queries, base[fixed], k)
        self._fixed = (scores, fixed[rows])

    def search(self, moved_vecs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(scores, document rows) of the top ``k``, given the new rows of the moved docs."""
        scores = self.queries @ moved_vecs.T
        idx = np.broadcast_to(self.moved, scores.shape)
        fixed_s, fixed_i = self._fixed
        return _keep(np.hstack([fixed_s, scores]), np.hstack([fixed_i, idx]), self.k)


def as_run(
    query_ids: Sequence[str], doc_ids: Sequence[str], scores: np.ndarray, rows: np.ndarray
) -> Run:
    return {
        q: {doc_ids[r]: float(s) for r, s in zip(row, srow, strict=True)}
        for q, row, srow in zip(query_ids, rows.tolist(), scores, strict=True)
    }


def per_query_results(
    run: Run, qrels: Qrels, k_values: Sequence[int]
) -> tuple[dict[str, float], dict[str, QueryResult]]:
    """Mean metrics and the per-query results an ``EvalReport`` holds."""
    means, per_query = evaluate_run(run, qrels, k_values)
    results = {}
    for qid, metrics in per_query.items():
        ranked = rank(run.get(qid, {}))
        position = {d: i + 1 for i, d in enumerate(ranked)}
        results[qid] = QueryResult(
            metrics=metrics,
            relevant_ranks={d: position.get(d) for d, g in qrels[qid].items() if g > 0},
            top_ids=ranked,
            top_scores=[run[qid][d] for d in ranked],
        )
    return means, results

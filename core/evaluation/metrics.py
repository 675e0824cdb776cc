"""Retrieval metrics that agree with trec_eval (and so pytrec_eval and BEIR).

Conventions, per query. ``rel(d)`` is the judged grade of doc ``d`` (unjudged = 0); a doc is
relevant when ``rel(d) > 0``; ``R`` is the number of relevant judged docs; ranks start at 1.

- Ranking: score descending, ties broken by doc id descending (string comparison), as
  trec_eval sorts a run.
- ``ndcg@k``: ``sum(rel(d_i) / log2(i + 1) for i <= k)`` divided by the same sum over all
  judged relevant grades sorted descending (trec_eval ``ndcg_cut``: linear gain; grades below
  0 count as 0).
- ``map@k``: sum of precision@i over the ranks ``i <= k`` that hold a relevant doc, divided
  by ``R`` (trec_eval ``map_cut``).
- ``recall@k``: relevant docs in the top k divided by ``R`` (trec_eval ``recall``).
- ``precision@k``: relevant docs in the top k divided by k, even when fewer than k docs are
  ranked (trec_eval ``P``).
- ``mrr@k``: 1 / rank of the first relevant doc in the top k, else 0 (trec_eval
  ``recip_rank`` on the run cut at k).
- ``hit@k``: 1 when a relevant doc is in the top k, else 0 (trec_eval ``success``).

``evaluate_run`` scores the queries of the qrels that have at least one relevant doc; such a
query missing from the run scores 0 on every metric. Means are unweighted over those queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from core.datasets.model import Qrels
from core.errors import InvalidInput

K_VALUES: tuple[int, ...] = (1, 3, 5, 10, 100)

Run = dict[str, dict[str, float]]
"""query id -> {doc id: score}."""


def rank(run_scores: dict[str, float]) -> list[str]:
    """Doc ids by score descending, ties by doc id descending (trec_eval order)."""
    return sorted(run_scores, key=lambda doc: (run_scores[doc], doc), reverse=True)


def _dcg(gains: Sequence[int]) -> float:
    return sum(g / math.log2(i + 1) for i, g in enumerate(gains, 1) if g > 0)


def query_metrics(
    ranked: list[str], relevant: dict[str, int], k_values: Sequence[int] = K_VALUES
) -> dict[str, float]:
    """Every metric at every cutoff for one ranked list; ``relevant`` maps doc id -> grade."""
    if any(k < 1 for k in k_values):
        raise InvalidInput(f"cutoffs must be >= 1, got {list(k_values)}", param="k_values")
    n_rel = sum(1 for grade in relevant.values() if grade > 0)
    if n_rel == 0:
        raise InvalidInput("query has no relevant documents", param="relevant")
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)
    gains = [max(relevant.get(doc, 0), 0) for doc in ranked[: max(k_values)]]
    out: dict[str, float] = {}
    for k in k_values:
        top = gains[:k]
        hit_ranks = [i for i, g in enumerate(top, 1) if g > 0]
        out[f"ndcg@{k}"] = _dcg(top) / _dcg(ideal[:k])
        out[f"map@{k}"] = sum(n / i for n, i in enumerate(hit_ranks, 1)) / n_rel
        out[f"recall@{k}"] = len(hit_ranks) / n_rel
        out[f"precision@{k}"] = len(hit_ranks) / k
        out[f"mrr@{k}"] = 1 / hit_ranks[0] if hit_ranks else 0.0
        out[f"hit@{k}"] = 1.0 if hit_ranks else 0.0
    return out


def aggregate(per_query: dict[str, dict[str, float]]) -> dict[str, float]:
    """Unweighted mean of each metric over queries; empty input gives an empty dict."""
    if not per_query:
        return {}
    names = next(iter(per_query.values()))
    return {name: sum(m[name] for m in per_query.values()) / len(per_query) for name in names}


def evaluate_run(
    run: Run, qrels: Qrels, k_values: Sequence[int] = K_VALUES
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(means, per-query metrics) over the qrels queries with at least one relevant doc."""
    per_query = {
        qid: query_metrics(rank(run.get(qid, {})), judged, k_values)
        for qid, judged in qrels.items()
        if any(grade > 0 for grade in judged.values())
    }
    return aggregate(per_query), per_query


HEADLINE_METRICS = ("ndcg@10", "recall@10", "mrr@10", "map@10", "recall@100")
"""The metrics a job result, a model card and a comparison report show."""
SUMMARY_METRICS = HEADLINE_METRICS[:3]
"""The columns of the compact tables (the comparison report, the NUDGE command)."""

"""Retrieval metrics: hand-computed cases, then agreement with pytrec_eval (trec_eval)."""

from __future__ import annotations

import csv
import json
import math
import random
from pathlib import Path

import pytest
import pytrec_eval

from core.datasets.model import Qrels
from core.errors import InvalidInput
from core.evaluation.metrics import K_VALUES, Run, aggregate, evaluate_run, query_metrics, rank

TREC_NAMES = {
    "ndcg": "ndcg_cut",
    "map": "map_cut",
    "recall": "recall",
    "precision": "P",
    "hit": "success",
}
SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"


def test_rank_breaks_ties_by_doc_id_descending() -> None:
    scores = {"d1": 0.5, "d2": 0.5, "d10": 0.5, "x": 0.9, "y": 0.1}
    assert rank(scores) == ["x", "d2", "d10", "d1", "y"]


def test_graded_ndcg_map_recall_precision() -> None:
    m = query_metrics(["b", "x", "a"], {"a": 2, "b": 1, "c": 0}, k_values=(1, 3))
    idcg3 = 2 + 1 / math.log2(3)
    assert m["ndcg@1"] == pytest.approx(1 / 2)
    assert m["ndcg@3"] == pytest.approx((1 + 2 / 2) / idcg3)
    assert m["map@1"] == pytest.approx(1 / 2)
    assert m["map@3"] == pytest.approx((1 + 2 / 3) / 2)
    assert (m["recall@1"], m["recall@3"]) == (0.5, 1.0)
    assert (m["precision@1"], m["precision@3"]) == (1.0, pytest.approx(2 / 3))


def test_mrr_and_hit_count_only_the_top_k() -> None:
    m = query_metrics(["x", "y", "a"], {"a": 1, "z": 0}, k_values=(1, 3))
    assert (m["mrr@1"], m["mrr@3"]) == (0.0, pytest.approx(1 / 3))
    assert (m["hit@1"], m["hit@3"]) == (0.0, 1.0)


def test_precision_divides_by_k_when_fewer_are_ranked() -> None:
    m = query_metrics(["a"], {"a": 1}, k_values=(5,))
    assert m["precision@5"] == pytest.approx(0.2)
    assert m["ndcg@5"] == m["recall@5"] == m["map@5"] == 1.0


def test_query_without_relevant_docs_is_rejected() -> None:
    with pytest.raises(InvalidInput):
        query_metrics(["a"], {"a": 0})


def test_evaluate_run_skips_unjudged_and_zeroes_missing_queries() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}
    run = {"q1": {"a": 1.0, "b": 0.5}, "q3": {"c": 1.0}}
    means, per_query = evaluate_run(run, qrels, k_values=(1, 10))
    assert set(per_query) == {"q1", "q2"}
    assert per_query["q2"] == dict.fromkeys(per_query["q2"], 0.0)
    assert means["ndcg@10"] == means["hit@1"] == 0.5
    assert aggregate(per_query) == means
    assert aggregate({}) == {}


def _trec_eval(qrels: Qrels, run: Run, measures: set[str]) -> dict[str, dict[str, float]]:
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


def _reference(run: Run, qrels: Qrels) -> dict[str, dict[str, float]]:
    """Our metric names with trec_eval's values, for the queries trec_eval scores."""
    ks = ",".join(map(str, K_VALUES))
    full = _trec_eval(qrels, run, {f"{m}.{ks}" for m in TREC_NAMES.values()})
    ref = {
        q: {
            f"{ours}@{k}": row[f"{theirs}_{k}"]
            for ours, theirs in TREC_NAMES.items()
            for k in K_VALUES
        }
        for q, row in full.items()
    }
    for k in K_VALUES:  # mrr@k is trec_eval's recip_rank on the run cut at k
        top_k = {q: {d: s[d] for d in rank(s)[:k]} for q, s in run.items()}
        for q, row in _trec_eval(qrels, top_k, {"recip_rank"}).items():
            ref[q][f"mrr@{k}"] = row["recip_rank"]
    return ref


def _assert_matches_trec_eval(run: Run, qrels: Qrels) -> None:
    """Every metric of ``evaluate_run`` equals trec_eval's, per query and on average."""
    means, ours = evaluate_run(run, qrels)
    assert set(ours) == {q: r for q, r in qrels.items() if max(r.values()) > 0}.keys()
    ref = _reference(run, qrels)
    expected = {q: ref.get(q, dict.fromkeys(m, 0.0)) for q, m in ours.items()}
    for q, metrics in ours.items():
        assert metrics == pytest.approx(expected[q], abs=1e-6), q
    assert means == pytest.approx(aggregate(expected), abs=1e-6)


def test_matches_pytrec_eval_on_a_random_graded_run() -> None:
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(500)]
    qrels = {
        f"q{i}": {d: rng.randint(0, 2) for d in rng.sample(docs, rng.randint(1, 20))}
        for i in range(200)
    }
    # Scores on a coarse grid leave many ties; some queries are missing from the run.
    run: Run = {
        q: {
            d: round(rng.random(), 2)
            for d in rng.sample(docs, rng.randint(50, 300)) + list(rel)[:2]
        }
        for q, rel in qrels.items()
        if rng.random() > 0.05
    }
    assert sum(len(set(s.values())) < len(s) for s in run.values()) > 100
    _assert_matches_trec_eval(run, qrels)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason="needs ../shared/datasets (not in a fresh clone)")
def test_matches_pytrec_eval_on_scifact_qrels() -> None:
    qrels: Qrels = {}
    with (SCIFACT / "qrels" / "test.tsv").open() as f:
        for row in csv.DictReader(f, delimiter="\t"):
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = int(row["score"])
    with (SCIFACT / "corpus.jsonl").open() as f:
        corpus = [json.loads(line)["_id"] for line in f]
    rng = random.Random(13)
    run = {
        q: {d: round(rng.random(), 3) for d in [*rel, *rng.sample(corpus, 100)]}
        for q, rel in sorted(qrels.items())
    }
    _assert_matches_trec_eval(run, qrels)

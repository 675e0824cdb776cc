"""Dataset statistics on a hand-made dataset."""

from __future__ import annotations

from dataclasses import astuple

import pytest

from core.datasets import Document, Query, RetrievalDataset, dataset_stats
from core.datasets.stats import Lengths


def test_stats_of_a_small_dataset() -> None:
    ds = RetrievalDataset(
        corpus={
            "d1": Document("d1", "a b c", title="T"),  # "T a b c": 7 chars, 4 tokens
            "d2": Document("d2", "hello"),  # 5 chars, 1 token
            "d3": Document("d3", "x y"),  # 3 chars, 2 tokens
            "d4": Document("d4", "0123456789"),  # 10 chars, 1 token
        },
        queries={
            "q1": Query("q1", "one two"),
            "q2": Query("q2", "three"),
            "q3": Query("q3", "unjudged query"),
        },
        qrels={
            "train": {"q1": {"d1": 1, "d2": 2, "d3": 0}},
            "test": {"q2": {"d2": 1}},
        },
        negatives={"q1": ["d4", "d3"]},
        scores={"q2": {"d1": 0.5}},
    )
    stats = dataset_stats(ds)
    assert (stats.documents, stats.queries) == (4, 3)
    assert stats.splits["train"].judged_queries == 1
    assert stats.splits["train"].qrels_pairs == 3
    assert stats.splits["train"].mean_relevant == 2.0
    assert stats.splits["test"].mean_relevant == 1.0
    # sorted doc lengths 3, 5, 7, 10 chars and 1, 1, 2, 4 tokens; linear interpolation
    assert astuple(stats.doc_chars) == pytest.approx((6.0, 9.1, 9.91, 10))
    assert astuple(stats.doc_tokens) == pytest.approx((1.5, 3.4, 3.94, 4))
    assert stats.query_tokens.max == 2
    assert stats.query_chars.p50 == 7.0
    assert stats.unjudged_queries == 1
    assert stats.never_relevant_documents == 2  # d3 (grade 0) and d4 (only a negative)
    assert (stats.negatives, stats.scored_pairs) == (2, 1)
    figures = stats.as_dict()
    assert figures["splits"]["test"] == {
        "judged_queries": 1,
        "qrels_pairs": 1,
        "mean_relevant": 1.0,
    }
    assert figures["doc_chars"]["max"] == 10


def test_stats_of_an_empty_dataset() -> None:
    stats = dataset_stats(RetrievalDataset({}, {}))
    assert stats.doc_chars == Lengths(0.0, 0.0, 0.0, 0)
    assert stats.splits == {}

"""Data checks on hand-made datasets: each check finds what it names, with ids."""

from __future__ import annotations

import pytest

from core.datasets import Document, Query, RetrievalDataset, dataset_stats
from core.datasets.checks import (
    NEAR_DUPLICATE_JACCARD,
    drop_fatal,
    fatal_in_stats,
    near_duplicate_documents,
    normalize_text,
    require_trainable,
)
from core.errors import DataCheckFailed

LONG = (
    "vitamin d supplementation reduces the risk of fractures in older adults living in "
    "care homes according to a randomized trial with two thousand participants"
)


def dataset() -> RetrievalDataset:
    return RetrievalDataset(
        corpus={
            "d1": Document("d1", LONG),
            "d2": Document("d2", LONG.upper() + "!"),  # the same once normalized
            "d3": Document("d3", LONG.replace("participants", "people")),  # Jaccard 21/23
            "d4": Document("d4", "protein folding in yeast cells under heat stress"),
            "d5": Document("d5", "-- ..."),  # no letter or digit
        },
        queries={
            "q1": Query("q1", "Does vitamin D prevent fractures?"),
            "q2": Query("q2", "protein folding"),
            "q3": Query("q3", "empty positive"),
            "q4": Query("q4", "no positive at all"),
            "t1": Query("t1", "does vitamin d prevent fractures"),  # q1 normalized
            "t2": Query("t2", "protein folding"),  # q2 exactly
            "t3": Query("t3", "something else"),
        },
        qrels={
            "train": {"q1": {"d1": 1}, "q2": {"d4": 1}, "q3": {"d5": 1}, "q4": {"d4": 0}},
            "test": {"t1": {"d1": 1}, "t2": {"d4": 1}, "t3": {"d4": 1}, "q2": {"d4": 1}},
        },
        negatives={"q1": ["d4", "d1"], "q2": ["d1"]},
    )


def test_normalize_text() -> None:
    assert normalize_text("  Hello,   WORLD!  ﬁne ") == "hello world fine"
    assert normalize_text("-- ...") == ""


def test_every_check_is_counted_in_the_stats_with_ids() -> None:
    checks = dataset_stats(dataset()).as_dict()["checks"]
    assert checks["train_split"] == "train"
    leaks = checks["test_query_in_train"]
    assert leaks["count"] == 2
    assert leaks["items"] == [
        {"split": "test", "query_id": "t1", "train_query_id": "q1", "match": "normalized"},
        {"split": "test", "query_id": "t2", "train_query_id": "q2", "match": "exact"},
    ]
    assert checks["test_query_id_in_train"]["items"] == [{"split": "test", "query_id": "q2"}]
    pairs = {
        tuple(i["doc_ids"]): i["similarity"] for i in checks["near_duplicate_documents"]["items"]
    }
    assert pairs[("d1", "d2")] == 1.0
    assert pairs[("d1", "d3")] == round(21 / 23, 4)
    assert ("d1", "d4") not in pairs and checks["near_duplicate_documents"]["count"] == 2
    assert checks["positive_is_negative"]["items"] == [
        {"query_id": "q1", "doc_id": "d1", "train": True}
    ]
    assert checks["positive_empty_document"]["items"] == [
        {"split": "train", "query_id": "q3", "doc_id": "d5"}
    ]
    assert checks["query_without_positives"]["items"] == [{"split": "train", "query_id": "q4"}]


def test_a_clean_dataset_has_zero_of_each() -> None:
    ds = RetrievalDataset(
        corpus={"d1": Document("d1", "alpha beta gamma"), "d2": Document("d2", "delta")},
        queries={"q1": Query("q1", "alpha"), "t1": Query("t1", "delta")},
        qrels={"train": {"q1": {"d1": 1}}, "test": {"t1": {"d2": 1}}},
        negatives={"q1": ["d2"]},
    )
    checks = dataset_stats(ds).as_dict()["checks"]
    assert {k: v["count"] for k, v in checks.items() if k != "train_split"} == dict.fromkeys(
        [
            "test_query_in_train",
            "test_query_id_in_train",
            "near_duplicate_documents",
            "positive_is_negative",
            "positive_empty_document",
            "query_without_positives",
        ],
        0,
    )
    require_trainable(ds, train_split="train", held_out=["test"])


def test_training_is_refused_with_the_fatal_checks_and_their_ids() -> None:
    with pytest.raises(DataCheckFailed) as caught:
        require_trainable(dataset(), train_split="train", held_out=["test"])
    error = caught.value
    assert error.code == "data_check_failed"
    by_code = {issue.code: issue.ids for issue in error.issues}
    assert by_code == {
        "test_query_in_train": ("t1", "q1", "t2", "q2"),
        "positive_is_negative": ("q1", "d1"),
        "query_without_positives": ("q4",),
    }
    assert error.issues[0].as_dict()["ids"] == ["t1", "q1", "t2", "q2"]


def test_a_split_not_held_out_leaks_nothing() -> None:
    ds = dataset()
    ds.negatives.clear()
    ds.qrels["train"].pop("q4")
    require_trainable(ds, train_split="train", held_out=["val"])  # no such split: nothing


def test_stored_checks_refuse_before_loading() -> None:
    checks = dataset_stats(dataset()).as_dict()["checks"]
    with pytest.raises(DataCheckFailed) as caught:
        fatal_in_stats(checks, train_split="train", held_out=["test"])
    assert {i.code for i in caught.value.issues} == {
        "test_query_in_train",
        "positive_is_negative",
        "query_without_positives",
    }
    fatal_in_stats(checks, train_split="other", held_out=["test"])  # computed for "train"


def test_near_duplicates_need_the_threshold() -> None:
    """One word changed mid-text changes 3 of 22 shingles: Jaccard 19/25, under 0.8."""
    changed = LONG.replace("fractures", "falls")
    ds = RetrievalDataset(
        corpus={"a": Document("a", LONG), "b": Document("b", changed)}, queries={}
    )
    assert NEAR_DUPLICATE_JACCARD == 0.8
    assert near_duplicate_documents(ds).count == 0
    assert near_duplicate_documents(ds, threshold=0.7).items == [
        {"doc_ids": ["a", "b"], "similarity": round(19 / 25, 4)}
    ]


def test_drop_removes_what_the_fatal_checks_name_and_nothing_else() -> None:
    ds = dataset()
    kept, dropped = drop_fatal(ds, train_split="train", held_out=["test"])
    assert dropped == {
        "test_query_in_train": 2,
        "positive_is_negative": 1,
        "query_without_positives": 1,
    }
    assert set(kept.qrels["train"]) == {"q3"}  # q1, q2 leak into test; q4 has no positive
    assert kept.qrels["test"] == ds.qrels["test"]
    assert kept.negatives == {"q1": ["d4"], "q2": ["d1"]}
    require_trainable(kept, train_split="train", held_out=["test"])
    assert set(dataset().qrels["train"]) == set(ds.qrels["train"])  # the input is unchanged

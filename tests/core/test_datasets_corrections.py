"""Corrections of a negative audit on a hand-made dataset."""

from __future__ import annotations

import pytest

from core.datasets import Document, Query, RetrievalDataset
from core.datasets.corrections import Correction, apply_corrections
from core.errors import DatasetInvalid


def dataset() -> RetrievalDataset:
    return RetrievalDataset(
        corpus={d: Document(d, f"text {d}") for d in ("d1", "d2", "d3")},
        queries={"q1": Query("q1", "one"), "q2": Query("q2", "two")},
        qrels={"train": {"q1": {"d1": 1}, "q2": {"d2": 1}}, "test": {"q1": {"d1": 1}}},
        negatives={"q1": ["d2", "d3"], "q2": ["d3"]},
    )


def test_a_corrected_negative_becomes_a_positive_in_a_copy() -> None:
    ds = dataset()
    fixes = [Correction("q1", "d3"), Correction("q2", "d3"), Correction("q1", "d3")]
    fixed = apply_corrections(ds, fixes, split="train")
    assert fixed.qrels["train"] == {"q1": {"d1": 1, "d3": 1}, "q2": {"d2": 1, "d3": 1}}
    assert fixed.negatives == {"q1": ["d2"]}  # q2 has none left
    assert fixed.qrels["test"] == {"q1": {"d1": 1}}
    assert ds == dataset()  # the original is left as it was


def test_corrections_that_do_not_apply_are_all_named() -> None:
    fixes = [
        Correction("q1", "d1"),  # a positive, not a negative
        Correction("q9", "d2"),
        Correction("q2", "d9"),
    ]
    with pytest.raises(DatasetInvalid) as caught:
        apply_corrections(dataset(), fixes, split="train")
    assert [(i.code, i.field) for i in caught.value.issues] == [
        ("not_a_negative", "corrections.0"),
        ("unknown_query_id", "corrections.1"),
        ("not_a_negative", "corrections.1"),
        ("unknown_doc_id", "corrections.2"),
    ]
    with pytest.raises(DatasetInvalid) as caught:
        apply_corrections(dataset(), [Correction("q2", "d3")], split="test")
    assert caught.value.code == "query_not_in_split"

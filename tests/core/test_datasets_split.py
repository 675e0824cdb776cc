"""Splitting a split by query: deterministic, disjoint, sized by the fraction."""

from __future__ import annotations

import pytest

from core.datasets import Document, Query, RetrievalDataset, split_by_query
from core.errors import InvalidInput, NotFound


def dataset(n: int = 20, *, reverse: bool = False) -> RetrievalDataset:
    ids = sorted(range(n), reverse=reverse)
    return RetrievalDataset(
        corpus={f"d{i}": Document(f"d{i}", f"doc {i}") for i in ids},
        queries={f"q{i}": Query(f"q{i}", f"query {i}") for i in ids},
        qrels={"train": {f"q{i}": {f"d{i}": 1} for i in ids}, "test": {"q0": {"d1": 1}}},
    )


def test_split_is_disjoint_complete_and_sized_by_the_fraction() -> None:
    ds = dataset()
    out = split_by_query(ds, val_fraction=0.25)
    train, val = out.qrels["train"], out.qrels["val"]
    assert (len(train), len(val)) == (15, 5)
    assert not train.keys() & val.keys()
    assert train | val == ds.qrels["train"]
    assert out.qrels["test"] == ds.qrels["test"]
    assert out.splits == ["test", "train", "val"]
    assert ds.splits == ["test", "train"]  # the input is left as it was


def test_split_depends_on_the_seed_not_on_dict_order() -> None:
    first = split_by_query(dataset(), seed=3)
    assert split_by_query(dataset(reverse=True), seed=3).qrels["val"].keys() == (
        first.qrels["val"].keys()
    )
    assert split_by_query(dataset(), seed=4).qrels["val"].keys() != first.qrels["val"].keys()


def test_split_into_other_names_from_another_source() -> None:
    out = split_by_query(dataset(), source="train", names=("fit", "dev"), val_fraction=0.5)
    assert out.splits == ["dev", "fit", "test"]
    assert len(out.qrels["dev"]) == 10


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"val_fraction": 0.01}, "val_fraction"),
        ({"val_fraction": 0.99}, "val_fraction"),
        ({"val_fraction": 1.0}, "val_fraction"),
        ({"names": ("a", "a")}, "names"),
        ({"names": ("train", "test")}, "names"),
    ],
)
def test_split_refuses_to_leave_a_side_empty_or_clash(kwargs: dict, param: str) -> None:
    with pytest.raises(InvalidInput) as err:
        split_by_query(dataset(), **kwargs)
    assert err.value.param == param


def test_split_of_a_missing_source() -> None:
    with pytest.raises(NotFound):
        split_by_query(dataset(), source="dev")

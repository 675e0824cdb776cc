"""Names that meet the filesystem, and values the database cannot store."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.datasets.io import load_dataset, save_dataset
from core.errors import InvalidInput
from core.names import check_name, child_path
from core.safe_values import check_value, too_deep


@pytest.mark.parametrize("name", ["train", "test-2024", "v1.2_dev", "A" * 64])
def test_safe_names_pass(name: str) -> None:
    assert check_name(name, param="split") == name


@pytest.mark.parametrize(
    "name", ["", "..", "a..b", "../x", "a/b", "a\\b", ".hidden", "-x", "x\x00", "é", "A" * 65]
)
def test_unsafe_names_are_refused_naming_the_field(name: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_name(name, param="split")
    assert (caught.value.code, caught.value.param) == ("invalid_name", "split")


def test_child_path_stays_under_its_root_through_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "out").symlink_to(tmp_path)
    assert child_path(root, "inside") == root / "inside"
    with pytest.raises(InvalidInput):
        child_path(root, "out")


def test_a_split_name_cannot_write_outside_the_dataset_folder(
    sample_dir: Path, tmp_path: Path
) -> None:
    ds = load_dataset(sample_dir)
    hostile = type(ds)(ds.corpus, ds.queries, {"../../escaped": ds.qrels["test"]})
    with pytest.raises(InvalidInput) as caught:
        save_dataset(hostile, tmp_path / "a" / "b", "beir")
    assert caught.value.param == "split"
    assert not list(tmp_path.rglob("escaped*"))


@pytest.mark.parametrize(
    ("value", "param", "code"),
    [
        ({"a": "x\ud800"}, "a", "invalid_text"),
        ({"a": ["ok", "x\x00"]}, "a[1]", "invalid_text"),
        ({"a": {"b": float("nan")}}, "a.b", "not_finite"),
        ({"a": [float("inf")]}, "a[0]", "not_finite"),
    ],
)
def test_unstorable_values_are_named(value: object, param: str, code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_value(value)
    assert (caught.value.param, caught.value.code) == (param, code)


def test_tabs_and_newlines_are_text() -> None:
    check_value({"instruction": "line one\nline\ttwo\r\n"})


def test_nesting_depth() -> None:
    nested: list = []  # 32 levels of lists: the most a value may have
    for _ in range(31):
        nested = [nested]
    assert not too_deep(nested) and too_deep([nested])

"""Faiss vector index: exact flat search, approximate recall, persistence, validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput, NotFound
from core.indexing.faiss_index import (
    AUTO_FLAT_MAX,
    AUTO_HNSW_MAX,
    QUALITY_FILE,
    IndexSpec,
    VectorIndex,
    gpu_available,
)

N, DIM = 5000, 32
APPROX = [IndexSpec(kind="ivf", nlist=64), IndexSpec(kind="hnsw")]
IVFPQ = IndexSpec(kind="ivfpq", nlist=64, pq_bytes=8)


def _unit(rows: int, seed: int, dim: int = DIM) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((rows, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _recall(found: list[list[str]], exact: list[list[str]]) -> float:
    return float(
        np.mean([len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)])
    )


@pytest.fixture(scope="module")
def docs() -> np.ndarray:
    return _unit(N, seed=0)


@pytest.fixture(scope="module")
def queries() -> np.ndarray:
    return _unit(200, seed=1)


@pytest.fixture(scope="module")
def ids() -> list[str]:
    return [f"doc-{i}" for i in range(N)]


@pytest.fixture(scope="module")
def flat(docs: np.ndarray, ids: list[str]) -> VectorIndex:
    return VectorIndex.build(docs, ids, IndexSpec(kind="flat"))


def test_flat_search_is_exact(
    flat: VectorIndex, docs: np.ndarray, queries: np.ndarray, ids: list[str]
) -> None:
    hits, scores = flat.search(queries, 10)
    dots = queries @ docs.T
    best = np.argsort(-dots, axis=1)[:, :10]
    assert hits == [[ids[j] for j in row] for row in best]
    np.testing.assert_allclose(scores, np.take_along_axis(dots, best, axis=1), atol=1e-5)
    assert (len(flat), flat.dim) == (N, DIM)


def test_auto_is_flat_for_small_corpora(docs: np.ndarray, ids: list[str]) -> None:
    assert VectorIndex.build(docs, ids).spec.kind == "flat"


@pytest.mark.parametrize("spec", APPROX, ids=lambda s: s.kind)
def test_approximate_indexes_reach_recall_at_10(
    spec: IndexSpec, flat: VectorIndex, docs: np.ndarray, queries: np.ndarray, ids: list[str]
) -> None:
    exact, _ = flat.search(queries, 10)
    found, _ = VectorIndex.build(docs, ids, spec).search(queries, 10)
    assert _recall(found, exact) >= 0.9


@pytest.mark.parametrize("spec", [IndexSpec(kind="flat"), *APPROX], ids=lambda s: s.kind)
def test_save_load_round_trip(
    spec: IndexSpec, docs: np.ndarray, queries: np.ndarray, ids: list[str], tmp_path: Path
) -> None:
    index = VectorIndex.build(docs, ids, spec)
    index.save(tmp_path / "index")
    loaded = VectorIndex.load(tmp_path / "index")
    assert (loaded.spec, len(loaded)) == (index.spec, N)
    before, after = index.search(queries, 10), loaded.search(queries, 10)
    assert before[0] == after[0]
    np.testing.assert_array_equal(before[1], after[1])


@pytest.mark.parametrize(
    ("n", "kind"),
    [(AUTO_FLAT_MAX, "flat"), (AUTO_FLAT_MAX + 1, "hnsw"), (AUTO_HNSW_MAX + 1, "ivfpq")],
)
def test_auto_picks_the_index_kind_by_corpus_size(n: int, kind: str) -> None:
    assert IndexSpec().resolved(n).kind == kind


def test_ivfpq_bytes_default_to_a_divisor_of_the_dimension() -> None:
    assert (IndexSpec().pq_m(384), IndexSpec().pq_m(768), IndexSpec().pq_m(32)) == (48, 96, 4)
    with pytest.raises(InvalidInput, match="pq_bytes"):
        IndexSpec(kind="ivfpq", pq_bytes=5).pq_m(32)


@pytest.mark.parametrize("spec", [*APPROX, IVFPQ], ids=lambda s: s.kind)
def test_recall_loss_is_measured_at_build_time_and_saved_with_the_index(
    spec: IndexSpec, flat: VectorIndex, docs: np.ndarray, ids: list[str], tmp_path: Path
) -> None:
    index = VectorIndex.build(docs, ids, spec)
    measured = index.quality["recall_at_10"]
    assert index.quality["exact"] is False and index.quality["queries"] == 200
    rows = np.random.default_rng(5).choice(N, 200, replace=False)  # other corpus rows
    found, _ = index.search(docs[rows], 10)
    independent = _recall(found, flat.search(docs[rows], 10)[0])
    assert abs(measured - independent) <= 0.1, (measured, independent)
    assert 0.0 < measured <= 1.0
    index.save(tmp_path / "index")
    assert (tmp_path / "index" / QUALITY_FILE).is_file()
    assert VectorIndex.load(tmp_path / "index").quality == index.quality


def test_ivfpq_trades_recall_for_memory(docs: np.ndarray, ids: list[str], tmp_path: Path) -> None:
    pq = VectorIndex.build(docs, ids, IVFPQ)
    ivf = VectorIndex.build(docs, ids, APPROX[0])
    pq.save(tmp_path / "pq")
    ivf.save(tmp_path / "ivf")
    size = {p: (tmp_path / p / "index.faiss").stat().st_size for p in ("pq", "ivf")}
    assert size["pq"] < size["ivf"] / 2  # 8 bytes a vector instead of 128
    assert pq.quality["recall_at_10"] < ivf.quality["recall_at_10"]
    assert VectorIndex.build(docs, ids, IndexSpec(kind="flat")).quality["recall_at_10"] == 1.0


def test_batches_give_the_same_result(flat: VectorIndex, queries: np.ndarray) -> None:
    hits, scores = flat.search(queries, 5, batch_size=7)
    assert hits == flat.search(queries, 5)[0]
    np.testing.assert_array_equal(scores, flat.search(queries, 5)[1])


def test_k_is_capped_at_index_size(queries: np.ndarray) -> None:
    small = VectorIndex.build(_unit(10, seed=2), [str(i) for i in range(10)])
    hits, scores = small.search(queries[:3], 50)
    assert [len(h) for h in hits] == [10, 10, 10]
    assert scores.shape == (3, 10)


def test_progress_reports_each_chunk() -> None:
    calls: list[tuple[int, int]] = []
    n = 40_000
    vectors, ids = _unit(n, seed=3, dim=4), [str(i) for i in range(n)]
    VectorIndex.build(vectors, ids, progress=lambda *a: calls.append(a))
    assert len(calls) > 1
    assert calls[-1] == (n, n)
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


@pytest.mark.parametrize(
    ("vectors", "n_ids"),
    [
        (np.ones(DIM, dtype=np.float32), 1),  # not a matrix
        (np.ones((3, DIM), dtype=np.int64), 3),  # not floating point
        (np.full((3, DIM), np.nan, dtype=np.float32), 3),
        (np.ones((3, DIM), dtype=np.float32), 2),  # one id per row
    ],
)
def test_bad_vectors_are_rejected(vectors: np.ndarray, n_ids: int) -> None:
    with pytest.raises(InvalidInput):
        VectorIndex.build(vectors, [str(i) for i in range(n_ids)])


def test_bad_queries_are_rejected(flat: VectorIndex, queries: np.ndarray) -> None:
    with pytest.raises(InvalidInput):
        flat.search(queries[:, :16], 10)
    with pytest.raises(InvalidInput):
        flat.search(queries, 0)


def test_duplicate_ids_are_rejected() -> None:
    with pytest.raises(InvalidInput):
        VectorIndex.build(_unit(2, seed=4), ["a", "a"])


def test_load_from_an_empty_folder_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        VectorIndex.load(tmp_path)


def test_float64_input_is_converted(flat: VectorIndex, queries: np.ndarray) -> None:
    hits, _ = flat.search(queries.astype(np.float64), 5)
    assert hits == flat.search(queries, 5)[0]


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_available(), reason="needs a CUDA GPU and faiss-gpu")
@pytest.mark.parametrize(
    "spec", [IndexSpec(kind="flat"), APPROX[0], IVFPQ], ids=lambda s: s.kind
)
def test_gpu_index_matches_cpu_and_saves(
    spec: IndexSpec, docs: np.ndarray, queries: np.ndarray, ids: list[str], tmp_path: Path
) -> None:
    cpu = VectorIndex.build(docs, ids, replace(spec, use_gpu=False))
    gpu = VectorIndex.build(docs, ids, replace(spec, use_gpu=True))
    assert gpu.on_gpu and not cpu.on_gpu
    found, _ = gpu.search(queries, 10)
    floor = {"flat": 0.99, "ivf": 0.9, "ivfpq": 0.6}[spec.kind]  # GPU PQ codes differ slightly
    assert _recall(found, cpu.search(queries, 10)[0]) >= floor
    assert abs(gpu.quality["recall_at_10"] - cpu.quality["recall_at_10"]) <= 0.1
    gpu.save(tmp_path)
    loaded = VectorIndex.load(tmp_path, use_gpu=False)
    assert not loaded.on_gpu
    assert _recall(loaded.search(queries, 10)[0], found) >= 0.99

"""NUDGE: the closed forms, which documents move, and a step chosen without the test split."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, encode_cached, evaluate
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.nudge import NudgeSpec, run_nudge
from core.nudge.closed_form import normalize, nudge_m, nudge_n, query_sums
from tests.cli.test_cli import run_cli

DOCS = normalize(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.6, 0.8, 0.0]], np.float32))
SUMS = np.array([[0.0, 0.0, 2.0], [0.0, 0.0, 0.0], [0.6, 0.8, 0.1]], np.float32)


def test_query_sums_add_the_queries_each_document_answers() -> None:
    queries = {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 2.0])}
    sums = query_sums(["d1", "d2", "d3"], {"a": ["d1"], "b": ["d1", "d3", "gone"]}, queries)
    np.testing.assert_allclose(sums, [[1.0, 2.0], [0.0, 0.0], [0.0, 2.0]])


@pytest.mark.parametrize("step", [0.1, 0.5, 1.0, 2.0])
def test_nudge_n_keeps_unit_length_within_the_bound(step: float) -> None:
    out = nudge_n(DOCS, SUMS, step)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.all(((out - DOCS) ** 2).sum(axis=1) <= step + 1e-6)
    np.testing.assert_array_equal(out[1], DOCS[1])  # no training query: unchanged
    # the similarity to the queries rises with the step
    assert out[0] @ SUMS[0] > DOCS[0] @ SUMS[0]


def test_nudge_n_reaches_the_queries_when_they_are_within_the_step() -> None:
    # doc 0 is 90 degrees from its queries: ||ĝ - e||² = 2, so a step of 2 lands on ĝ
    np.testing.assert_allclose(nudge_n(DOCS, SUMS, 2.0)[0], [0.0, 0.0, 1.0], atol=1e-6)
    # the rim solution for a smaller step lies between e and ĝ, at exactly the bound
    rim = nudge_n(DOCS, SUMS, 0.5)[0]
    assert ((rim - DOCS[0]) ** 2).sum() == pytest.approx(0.5, abs=1e-6)
    assert rim[1] == pytest.approx(0.0, abs=1e-6) and rim[0] > 0 and rim[2] > 0


def test_nudge_m_moves_by_exactly_the_step_along_the_queries() -> None:
    out = nudge_m(DOCS, SUMS, 0.3)
    moved = np.linalg.norm(out - DOCS, axis=1)
    np.testing.assert_allclose(moved, [0.3, 0.0, 0.3], atol=1e-6)
    np.testing.assert_allclose(out[0], [1.0, 0.0, 0.3], atol=1e-6)


def test_step_zero_changes_nothing() -> None:
    np.testing.assert_allclose(nudge_n(DOCS, SUMS, 0.0), DOCS, atol=1e-6)
    np.testing.assert_allclose(nudge_m(DOCS, SUMS, 0.0), DOCS, atol=1e-6)


@pytest.mark.parametrize(
    "fields", [{"variant": "nudge-x"}, {"steps": ()}, {"steps": (-1.0,)}, {"metric": "auc"}]
)
def test_invalid_specs_are_refused(fields: dict) -> None:
    with pytest.raises(InvalidInput):
        NudgeSpec(**fields)


# On the SciFact sample with the tiny model. --------------------------------------------------


@pytest.fixture(scope="module")
def sample(sample_dir: Path) -> RetrievalDataset:
    return load_dataset(sample_dir)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    return EmbeddingCache(tmp_path_factory.mktemp("cache"))


@pytest.mark.parametrize("variant", ["nudge-n", "nudge-m"])
def test_only_documents_with_training_queries_move(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache, variant: str
) -> None:
    spec = NudgeSpec(variant=variant, steps=(0.4,))  # type: ignore[arg-type]
    result = run_nudge(sample, embedder, spec, cache=cache)
    texts = [sample.corpus[d].full_text for d in result.doc_ids]
    base = normalize(encode_cached(embedder, texts, "document", cache)[0])
    changed = {
        d
        for d, a, b in zip(result.doc_ids, result.vectors, base, strict=True)
        if not np.allclose(a, b, atol=1e-5)
    }
    answers = {d for rel in sample.qrels["train"].values() for d, g in rel.items() if g > 0}
    assert changed == answers & set(sample.corpus)
    assert result.report.docs_moved == len(changed) and result.report.step == 0.4
    assert result.report.train_queries == len(sample.qrels["train"])


def test_without_refit_only_the_tuning_queries_move_documents(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache
) -> None:
    full = run_nudge(sample, embedder, NudgeSpec(steps=(0.4,)), cache=cache).report
    fit_only = run_nudge(sample, embedder, NudgeSpec(steps=(0.4,), refit=False), cache=cache)
    assert fit_only.report.train_queries + fit_only.report.val_queries == full.train_queries
    assert fit_only.report.docs_moved < full.docs_moved


def test_the_step_is_chosen_without_the_test_split(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache
) -> None:
    spec = NudgeSpec(steps=(0.0, 0.1, 0.3, 0.6, 1.0))
    first = run_nudge(sample, embedder, spec, cache=cache)
    # Other test judgments (each test query now "answered" by a random document) and no test
    # split at all: the same step, curve and embeddings.
    rng = np.random.default_rng(0)
    ids = list(sample.corpus)
    poisoned = {q: {ids[rng.integers(len(ids))]: 1} for q in sample.qrels["test"]}
    other = replace(sample, qrels={**sample.qrels, "test": poisoned})
    second = run_nudge(other, embedder, spec, cache=cache)
    untested = run_nudge(sample, embedder, replace(spec, test_split=None), cache=cache)
    for run in (second, untested):
        assert run.report.step == first.report.step and run.report.curve == first.report.curve
        np.testing.assert_array_equal(run.vectors, first.vectors)
    assert untested.test_report is None and untested.report.test_after == {}
    best = max(m for _, m in first.report.curve)
    assert dict(first.report.curve)[first.report.step] == best
    assert first.report.val_after[spec.metric] == best


def test_test_metrics_match_the_evaluator_before_tuning(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache
) -> None:
    result = run_nudge(sample, embedder, NudgeSpec(steps=(0.5,)), cache=cache)
    spec = EvalSpec(split="test", index=IndexSpec(kind="flat"))
    reference = evaluate(sample, embedder, spec, cache=cache)
    for name in ("ndcg@10", "recall@100", "mrr@10"):
        assert result.report.test_before[name] == pytest.approx(reference.metrics[name], abs=1e-4)
    report = result.test_report
    assert report is not None and report.num_queries == reference.num_queries
    assert report.metrics == result.report.test_after
    assert set(report.per_query) == set(reference.per_query)


def test_explicit_validation_split_is_used_as_given(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache
) -> None:
    train = sample.qrels["train"]
    val_ids = sorted(train)[:50]
    ds = replace(
        sample,
        qrels={
            **sample.qrels,
            "train": {q: r for q, r in train.items() if q not in val_ids},
            "dev": {q: train[q] for q in val_ids},
        },
    )
    report = run_nudge(ds, embedder, NudgeSpec(val_split="dev", steps=(0.2,)), cache=cache).report
    assert report.val_queries == 50 and report.train_queries == len(train) - 50


def test_the_nudge_command_writes_an_index_and_its_report(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    out = run_cli(
        "nudge",
        "--dataset",
        str(sample_dir),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(tmp_path / "index"),
        "--steps",
        "0.2,0.4",
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads((tmp_path / "index" / "nudge.json").read_text())
    assert report["step"] in (0.2, 0.4) and report["docs_moved"] > 0
    index = VectorIndex.load(tmp_path / "index")
    assert len(index) == report["num_documents"] == 2000
    assert (
        "documents moved" in out.stdout and f"{report['test_after']['ndcg@10']:.4f}" in out.stdout
    )

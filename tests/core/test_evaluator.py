"""Evaluation end to end in core: cached encoding, Faiss search, metrics checked by pytrec_eval."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytrec_eval

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput, NotFound
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.report import EvalReport
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder


@pytest.fixture(scope="module")
def sample(sample_dir: Path) -> RetrievalDataset:
    return load_dataset(sample_dir)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def cached_run(
    sample: RetrievalDataset, embedder: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> tuple[EvalReport, EmbeddingCache]:
    cache = EmbeddingCache(tmp_path_factory.mktemp("cache"))
    return evaluate(sample, embedder, EvalSpec(split="test"), cache=cache), cache


def test_report_covers_every_judged_query(cached_run: tuple[EvalReport, EmbeddingCache]) -> None:
    report, _ = cached_run
    assert (report.num_queries, report.num_documents, report.split) == (300, 2000, "test")
    assert set(report.metrics) == {
        f"{m}@{k}"
        for m in ("ndcg", "map", "recall", "precision", "mrr", "hit")
        for k in (1, 3, 5, 10, 100)
    }
    assert all(0.0 <= v <= 1.0 for v in report.metrics.values())
    # A random-weight model still ranks by shared word pieces: well above chance (~0.003).
    assert 0.01 < report.metrics["ndcg@10"] < 0.9
    assert report.metrics["recall@100"] >= report.metrics["recall@10"]
    result = next(iter(report.per_query.values()))
    assert len(result.top_ids) == 100 and result.top_scores == sorted(
        result.top_scores, reverse=True
    )
    assert result.relevant_ranks


def test_metrics_agree_with_pytrec_eval(
    cached_run: tuple[EvalReport, EmbeddingCache], sample: RetrievalDataset
) -> None:
    report, _ = cached_run
    qrels = sample.split_qrels("test")
    measures = {
        "ndcg_cut.1,3,5,10,100",
        "map_cut.1,3,5,10,100",
        "recall.1,3,5,10,100",
        "P.1,3,5,10,100",
    }
    trec = pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(report.run())
    names = {"ndcg": "ndcg_cut", "map": "map_cut", "recall": "recall", "precision": "P"}
    for ours, theirs in names.items():
        for k in (1, 3, 5, 10, 100):
            mean = sum(q[f"{theirs}_{k}"] for q in trec.values()) / len(trec)
            assert report.metrics[f"{ours}@{k}"] == pytest.approx(mean, abs=1e-6)
            for qid, scores in trec.items():
                per_query = report.per_query[qid].metrics[f"{ours}@{k}"]
                assert per_query == pytest.approx(scores[f"{theirs}_{k}"], abs=1e-6)


def test_second_evaluation_encodes_nothing(
    cached_run: tuple[EvalReport, EmbeddingCache],
    sample: RetrievalDataset,
    embedder: Embedder,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, cache = cached_run
    calls: list[int] = []
    original = embedder.st.encode
    monkeypatch.setattr(
        embedder.st, "encode", lambda texts, **kw: calls.append(len(texts)) or original(texts, **kw)
    )
    second = evaluate(sample, embedder, EvalSpec(split="test"), cache=cache)
    assert calls == []
    assert second.cache["corpus_hits"] == len({d.full_text for d in sample.corpus.values()})
    assert second.metrics == pytest.approx(first.metrics, abs=1e-6)


def test_report_round_trips_through_json(
    cached_run: tuple[EvalReport, EmbeddingCache], tmp_path: Path
) -> None:
    report, _ = cached_run
    loaded = EvalReport.load(report.save(tmp_path / "r.json"))
    assert loaded.metrics == report.metrics
    assert loaded.per_query == report.per_query
    assert loaded.primary == report.metrics["ndcg@10"]


def test_split_without_judgments_is_refused(sample: RetrievalDataset, embedder: Embedder) -> None:
    with pytest.raises(NotFound, match="no split 'dev'"):
        evaluate(sample, embedder, EvalSpec(split="dev"))
    empty = RetrievalDataset(sample.corpus, sample.queries, {"test": {"1": {"x": 0}}})
    with pytest.raises(InvalidInput) as info:
        evaluate(empty, embedder, EvalSpec(split="test"))
    assert info.value.code == "no_judged_queries"


@pytest.mark.real_model
def test_packaged_minilm_on_scifact_sample(sample: RetrievalDataset, tmp_path: Path) -> None:
    embedder = load_embedder("sentence-transformers/all-MiniLM-L6-v2")
    report = evaluate(sample, embedder, EvalSpec(split="test"), cache=EmbeddingCache(tmp_path))
    # 2,000 of SciFact's 5,183 abstracts: fewer distractors than the full set's 0.645.
    assert 0.66 < report.metrics["ndcg@10"] < 0.80

"""Rerankers on tiny cross-encoders: loading, every loss, LoRA, cancel and resume, fusion,
retrieve → rerank evaluation and reranking-only evaluation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from core.datasets.model import Document, Query, RetrievalDataset
from core.errors import Cancelled, InvalidInput
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import load_embedder
from core.models.loading import PICKLE_SUFFIXES
from core.reranking.data import dataset_teacher, list_columns, margin_columns, pair_columns
from core.reranking.evaluate import evaluate_candidates, evaluate_reranked
from core.reranking.finetune import run_rerank_finetune
from core.reranking.fusion import choose_weight, fuse
from core.reranking.mining_filter import filter_with_reranker
from core.reranking.pipeline import rerank_embedder
from core.reranking.reranker import RERANK_CONFIG, is_reranker_dir, load_reranker
from core.reranking.spec import RerankSpec
from core.reranking.teachers import reranker_scores, reranker_teacher
from core.training import FinetuneSpec, run_finetune
from tests.core.test_training import Recorder, small_dataset


@pytest.fixture(scope="module")
def small(sample_dir: Path) -> RetrievalDataset:
    """24 judged train queries over ~90 documents, 3 negatives each, split 18/6."""
    return small_dataset(sample_dir, queries=24, others=60)


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path) -> RerankSpec:
    return RerankSpec(
        base_model=str(tiny_model_dir),
        epochs=1,
        batch_size=8,
        learning_rate=1e-3,
        max_seq_length=64,
        num_negatives=3,
        candidates=8,
        logging_steps=1,
    )


@pytest.fixture(scope="module")
def trained(
    small: RetrievalDataset, spec: RerankSpec, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Recorder, object]:
    out = tmp_path_factory.mktemp("rerank") / "bce"
    recorder = Recorder()
    result = run_rerank_finetune(spec, small, out, reporter=recorder, resume=False)
    return out, recorder, result


def test_loads_an_encoder_with_a_fresh_head_and_a_reranker_checkpoint(
    tiny_model_dir: Path, tiny_reranker_dir: Path
) -> None:
    assert not is_reranker_dir(tiny_model_dir) and is_reranker_dir(tiny_reranker_dir)
    pairs = [("vitamin d", "vitamin d in adults"), ("yeast", "a trial of aspirin")]
    for ref in (tiny_model_dir, tiny_reranker_dir):
        scores = load_reranker(str(ref)).score(pairs)
        assert scores.shape == (2,) and np.isfinite(scores).all()
    # a checkpoint scores as sentence-transformers' own CrossEncoder does
    own = CrossEncoder(str(tiny_reranker_dir)).predict(pairs)
    assert np.allclose(load_reranker(str(tiny_reranker_dir)).score(pairs), own, atol=1e-6)


def test_training_tables_per_loss(small: RetrievalDataset, tiny_model_dir: Path) -> None:
    pairs = pair_columns(small, "train", 3)
    judged = sum(len(j) for j in small.qrels["train"].values())
    assert pairs["label"].count(1.0) == judged
    assert pairs["label"].count(0.0) == 3 * len(small.qrels["train"])
    lists = list_columns(small, "train", 3)
    assert len(lists["query"]) == len(small.qrels["train"])
    for docs, labels in zip(lists["docs"], lists["labels"], strict=True):
        assert len(docs) == len(labels) and sum(labels) >= 1
    with pytest.raises(InvalidInput) as missing:
        margin_columns(small, "train", 3, dataset_teacher(small))
    assert missing.value.code == "missing_teacher_score"
    margins = margin_columns(small, "train", 2, lambda pairs: [1.0, 0.25, 0.5] * (len(pairs) // 3))
    assert set(margins) == {"query", "positive", "negative_1", "negative_2", "label"}
    assert margins["label"][0] == [0.75, 0.5]


def test_bce_fine_tune_writes_a_loadable_reranker_with_card_and_fusion(trained) -> None:
    out, recorder, result = trained
    assert (out / "model.safetensors").is_file()
    assert not [p for p in out.rglob("*") if p.suffix in PICKLE_SUFFIXES]
    assert not (out / "checkpoints").exists()
    assert recorder.steps and recorder.steps[-1][0] == recorder.steps[-1][1]
    assert {"ndcg@10", "mrr@10"} <= set(result.metrics_before) & set(result.metrics_after)
    assert 0 <= result.fusion["weight"] <= 1
    # fused on validation is never below the first stage alone
    assert result.fusion["fused"]["ndcg@10"] >= result.fusion["first_stage"]["ndcg@10"]
    card = (out / "README.md").read_text("utf-8")
    assert "reranked before" in card and "**Verdict:**" in card
    pairs = [("protein folding", "yeast protein folding"), ("vitamin", "a trial of vitamin d")]
    ours = load_reranker(str(out)).score(pairs)
    assert np.allclose(CrossEncoder(str(out)).predict(pairs), ours, atol=1e-6)
    assert load_reranker(str(out)).fusion_weight() == result.fusion["weight"]
    assert (out / RERANK_CONFIG).is_file()


@pytest.mark.parametrize("loss", ["lambda", "listnet", "margin_mse"])
def test_listwise_and_distillation_losses_train(
    loss: str, small: RetrievalDataset, spec: RerankSpec, tiny_model_dir: Path, tmp_path: Path
) -> None:
    teacher = str(tiny_model_dir) if loss == "margin_mse" else None
    recorder = Recorder()
    run = replace(spec, loss=loss, teacher_model=teacher)  # type: ignore[arg-type]
    result = run_rerank_finetune(run, small, tmp_path / loss, reporter=recorder, resume=False)
    losses = [s[2] for s in recorder.steps]
    assert losses and all(np.isfinite(losses))
    assert result.metrics_after["ndcg@10"] > 0
    assert CrossEncoder(str(tmp_path / loss)).predict([("a", "b")]).shape == (1,)


def test_lora_reranker_saves_merged_weights(
    small: RetrievalDataset, spec: RerankSpec, tmp_path: Path
) -> None:
    out = tmp_path / "lora"
    run_rerank_finetune(replace(spec, method="lora", learning_rate=1e-2), small, out, resume=False)
    assert not list(out.glob("adapter_*"))
    assert CrossEncoder(str(out)).predict([("yeast", "yeast cells")]).shape == (1,)


def test_cancel_saves_a_checkpoint_and_a_rerun_resumes(
    small: RetrievalDataset, spec: RerankSpec, tmp_path: Path
) -> None:
    out = tmp_path / "cancel"
    calls = iter(range(1000))
    with pytest.raises(Cancelled):
        run_rerank_finetune(spec, small, out, should_cancel=lambda: next(calls) >= 2)
    assert list((out / "checkpoints").glob("checkpoint-*"))
    recorder = Recorder()
    run_rerank_finetune(spec, small, out, reporter=recorder)
    assert any(e.startswith("resuming from checkpoint-") for e in recorder.events)
    assert (out / "model.safetensors").is_file()


def test_fusion_never_loses_to_the_first_stage_on_validation() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"c": 1}}
    first = {"q1": {"a": 0.9, "b": 0.5, "c": 0.1}, "q2": {"c": 0.8, "a": 0.7, "b": 0.1}}
    wrong = {"q1": {"a": 0.0, "b": 1.0, "c": 0.5}, "q2": {"c": 0.0, "a": 1.0, "b": 0.5}}
    bad = choose_weight(first, wrong, qrels)
    assert bad.weight == 0 and not bad.helps
    assert bad.fused["ndcg@10"] == bad.first_stage["ndcg@10"] == 1.0
    worse_first = {"q1": {"b": 0.9, "a": 0.8, "c": 0.1}, "q2": {"a": 0.8, "c": 0.7, "b": 0.1}}
    right = {"q1": {"a": 1.0, "b": 0.0, "c": 0.0}, "q2": {"c": 1.0, "a": 0.0, "b": 0.0}}
    good = choose_weight(worse_first, right, qrels)
    assert good.helps and good.fused["ndcg@10"] == 1.0 > good.first_stage["ndcg@10"]
    assert fuse(worse_first, right, 0.0)["q1"] == {"b": 1.0, "a": 0.875, "c": 0.0}


def test_retrieve_then_rerank_reports_three_lists_and_latency(
    trained, small: RetrievalDataset, tiny_model_dir: Path
) -> None:
    out, _, _ = trained
    embedder = load_embedder(str(tiny_model_dir))
    ds = replace(small, qrels={**small.qrels, "test": small.qrels["val"]})
    report = rerank_embedder(ds, embedder, load_reranker(str(out)), split="test", top_k=8)
    assert set(report.metrics) == {"first_stage", "reranked", "fused"}
    assert report.weight_from == "validation split 'val'"
    assert report.latency["mean_ms"] > 0 and report.latency["pairs_per_second"] > 0
    assert report.num_queries == len(report.per_query) == len(ds.qrels["test"])
    row = next(iter(report.per_query.values()))
    assert {"first_stage", "reranked", "fused", "top_ids"} <= set(row)
    assert len(row["top_ids"]) == 8
    assert ("did not help" in report.verdict) == (not report.helps)
    # without a validation split the weight saved by the fine-tune is used, and said so
    test_only = replace(ds, qrels={"test": ds.qrels["test"]})
    first = evaluate(test_only, embedder, EvalSpec(split="test")).run()
    saved = evaluate_reranked(
        test_only,
        load_reranker(str(out)),
        first,
        split="test",
        first_stage="tiny",
        top_k=8,
        weight=load_reranker(str(out)).fusion_weight(),
    )
    assert saved.weight_from.startswith("the reranker's own fine-tune")
    with pytest.raises(InvalidInput) as refused:
        evaluate_reranked(test_only, load_reranker(str(out)), first, split="test", first_stage="x")
    assert refused.value.code == "no_fusion_weight"


def test_reranking_only_evaluation_on_own_candidates(tiny_reranker_dir: Path) -> None:
    corpus = {
        f"d{i}": Document(f"d{i}", text)
        for i, text in enumerate(["yeast cells", "bone", "aspirin", "cells"])
    }
    ds = RetrievalDataset(
        corpus=corpus,
        queries={"q": Query("q", "yeast"), "r": Query("r", "aspirin trial")},
        qrels={"test": {"q": {"d0": 1}, "r": {"d2": 1}}},
        negatives={"q": ["d1", "d3"], "r": ["d1"]},
    )
    result = evaluate_candidates(ds, load_reranker(str(tiny_reranker_dir)), "test")
    assert set(result["metrics"]) == {"map", "mrr@10", "ndcg@10"}
    assert all(0 < v <= 1 for v in result["metrics"].values())
    assert result["candidates_per_query"] == 2.5
    with pytest.raises(InvalidInput) as none:
        evaluate_candidates(
            replace(ds, negatives={}), load_reranker(str(tiny_reranker_dir)), "test"
        )
    assert none.value.code == "no_candidates"


def test_reranker_scores_are_computed_once(tiny_reranker_dir: Path, tmp_path: Path) -> None:
    reranker = load_reranker(str(tiny_reranker_dir))
    cache = EmbeddingCache(tmp_path)
    pairs = [("yeast", "yeast cells"), ("bone", "aspirin")]
    first = reranker_scores(reranker, pairs, cache)
    calls = []
    original = reranker.score
    reranker.score = lambda p: calls.append(p) or original(p)  # type: ignore[method-assign]
    again = reranker_scores(reranker, [*pairs, ("new", "pair")], cache)
    assert np.allclose(again[:2], first) and calls == [[("new", "pair")]]


def test_positive_aware_filter_drops_negatives_scored_near_the_positive(
    trained, small: RetrievalDataset
) -> None:
    out, _, _ = trained
    reranker = load_reranker(str(out))
    filtered, report = filter_with_reranker(small, "train", reranker, margin=0.05, keep=2)
    assert report.queries == len(small.qrels["train"]) and report.scored == 3 * report.queries
    kept_total = sum(len(filtered.negatives.get(q, [])) for q in small.qrels["train"])
    assert kept_total == report.kept and report.kept + report.dropped <= report.scored
    for qid, judged in small.qrels["train"].items():
        kept = filtered.negatives.get(qid, [])
        assert len(kept) <= 2 and set(kept) <= set(small.negatives[qid])
        text = small.queries[qid].text
        scores = reranker.score([(text, small.corpus[d].full_text) for d in [*judged, *kept]])
        lowest = scores[: len(judged)].min()
        assert (scores[len(judged) :] <= lowest - abs(lowest) * 0.05 + 1e-6).all()
    assert all(filtered.negatives[q] == small.negatives[q] for q in small.qrels["val"])


@pytest.mark.parametrize("loss", ["margin_mse", "distill_kl"])
def test_a_bi_encoder_distills_reranker_scores(
    loss: str,
    small: RetrievalDataset,
    tiny_model_dir: Path,
    tiny_reranker_dir: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(InvalidInput) as refused:
        FinetuneSpec(loss=loss)  # type: ignore[arg-type]
    assert refused.value.param == "teacher_reranker"
    spec = FinetuneSpec(
        base_model=str(tiny_model_dir), loss=loss, teacher_reranker=str(tiny_reranker_dir),  # type: ignore[arg-type]
        epochs=1, batch_size=8, learning_rate=1e-3, max_seq_length=64, num_hard_negatives=2,
    )  # fmt: skip
    reranker = load_reranker(str(tiny_reranker_dir))
    teacher = reranker_teacher(small, reranker, EmbeddingCache(tmp_path / "cache"))
    result = run_finetune(spec, small, tmp_path / "student", resume=False, teacher=teacher)
    assert "ndcg@10" in result.metrics_after
    assert "teacher_reranker" in (tmp_path / "student" / "README.md").read_text("utf-8")
    assert list((tmp_path / "cache").rglob("*.npy"))  # the teacher's scores, kept for reruns

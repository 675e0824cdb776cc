"""ColBERT (late interaction) on a tiny encoder: the MaxSim token index scores as
sentence-transformers' ``maxsim`` does, a ColBERT fine-tune learns and saves a model that loads
as token vectors, and evaluation scores it with the same report and embedding cache."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers.multi_vector_encoder import maxsim

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput, TooLarge
from core.evaluation.evaluator import EvalSpec, evaluate
from core.indexing.token_index import TokenIndex, check_budget, estimate_bytes
from core.models.cache import EmbeddingCache
from core.models.embedder import load_embedder
from core.models.multi_vector import MultiVectorEmbedder, is_multi_vector
from core.training import FinetuneSpec, run_finetune
from tests.core.test_training import Recorder, loss_fell, small  # noqa: F401 (fixture)


def unit_rows(rng: np.random.Generator, n: int, dim: int = 16) -> np.ndarray:
    rows = rng.normal(size=(n, dim)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_token_index_gives_maxsim_scores_and_ranks_by_them(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    docs = [unit_rows(rng, n) for n in (3, 9, 1, 14, 6)]
    queries = [unit_rows(rng, n) for n in (4, 7)]
    index = TokenIndex.build(docs, ["a", "b", "c", "d", "e"])
    expected = maxsim([torch.tensor(q) for q in queries], [torch.tensor(d) for d in docs])
    np.testing.assert_allclose(index.scores(queries), expected.numpy(), atol=2e-3)  # float16
    ids, scores = index.search(queries, k=3)
    assert ids[0] == [["a", "b", "c", "d", "e"][j] for j in np.argsort(-expected[0].numpy())[:3]]
    assert (np.diff(scores, axis=1) <= 0).all()
    assert index.nbytes == 33 * 16 * 2 + 6 * 8 and index.bytes_per_document == index.nbytes / 5
    index.save(tmp_path / "idx")
    again = TokenIndex.load(tmp_path / "idx")
    assert again.ids == index.ids and np.array_equal(again.tokens, index.tokens)
    padded = np.zeros((2, 10, 16), np.float32)  # all-zero rows are padding, left out
    padded[0, :3], padded[1, :4] = docs[0], queries[0]
    assert len(TokenIndex.build(padded[:1], ["a"]).tokens) == 3
    with pytest.raises(InvalidInput):
        TokenIndex.build([docs[0], docs[1]], ["a", "a"])


def test_an_index_over_the_memory_budget_is_refused_with_its_size() -> None:
    counts = [100] * 1000
    assert estimate_bytes(counts, 128) == 100_000 * 128 * 2 + 1001 * 8
    assert check_budget(counts, 128, 64 << 20) == estimate_bytes(counts, 128)
    with pytest.raises(TooLarge) as caught:
        check_budget(counts, 128, 16 << 20)
    assert caught.value.code == "index_too_large" and "bytes per document" in str(caught.value)


@pytest.fixture(scope="module")
def colbert_run(
    tiny_model_dir: Path,
    small: RetrievalDataset,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
):
    spec = FinetuneSpec(
        method="colbert",
        base_model=str(tiny_model_dir),
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        max_seq_length=48,
        query_length=16,
        logging_steps=1,
        num_hard_negatives=2,
    )
    reporter = Recorder()
    out = tmp_path_factory.mktemp("colbert") / "model"
    return run_finetune(spec, small, out, reporter=reporter), reporter


def test_colbert_from_a_plain_encoder_learns_and_saves_a_token_vector_model(
    colbert_run,
    small: RetrievalDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    result, reporter = colbert_run
    assert loss_fell(reporter) and result.method == "colbert"
    out = result.model_dir
    assert is_multi_vector(out) and not (out / "checkpoints").exists()
    assert "ColBERT" in (out / "README.md").read_text("utf-8")
    embedder = load_embedder(str(out))
    assert isinstance(embedder, MultiVectorEmbedder)
    assert (embedder.dim, embedder.max_seq_length, embedder.query_length) == (128, 48, 16)
    tokens = embedder.encode_tokens(["protein folding in yeast cells"] * 2, "document")
    assert tokens[0].shape[1] == 128 and 2 < len(tokens[0]) <= 48
    np.testing.assert_allclose(np.linalg.norm(tokens[0], axis=1), 1.0, atol=1e-4)
    # evaluation: the validation split as training scored it, then from the embedding cache
    cache = EmbeddingCache(tmp_path / "cache")
    first = evaluate(small, embedder, EvalSpec(split="val"), cache=cache)
    assert first.metrics["ndcg@10"] == pytest.approx(result.metrics_after["ndcg@10"], abs=1e-3)
    assert set(first.per_query) == set(small.qrels["val"]) and first.cache["corpus_hits"] == 0
    again = evaluate(small, embedder, EvalSpec(split="val"), cache=cache)
    assert again.cache["corpus_misses"] == 0 and again.metrics == first.metrics
    assert again.model_fingerprint == embedder.fingerprint


def test_colbert_spec_defaults_and_refusals() -> None:
    spec = FinetuneSpec(method="colbert")
    assert (spec.query_length, spec.max_seq_length, spec.loss_scale) == (64, 256, 1.0)
    assert FinetuneSpec().loss_scale == 20.0 and replace(spec, scale=5.0).loss_scale == 5.0
    for bad, param in (({"loss": "cosent"}, "loss"), ({"query_length": 0}, "query_length")):
        with pytest.raises(InvalidInput) as caught:
            FinetuneSpec.from_dict({"method": "colbert", **bad})
        assert caught.value.param == param


def test_distillation_trains_on_the_base_encoders_scores(
    tiny_model_dir: Path,
    small: RetrievalDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    from core.training.multi_vector import distillation_columns

    spec = FinetuneSpec(
        method="colbert",
        loss="distillation",
        base_model=str(tiny_model_dir),
        epochs=1,
        batch_size=8,
        learning_rate=1e-3,
        max_seq_length=32,
        query_length=16,
        logging_steps=1,
        num_hard_negatives=2,
    )
    teacher = load_embedder(str(tiny_model_dir))
    columns = distillation_columns(spec, small, "train", teacher, None)
    q = teacher.encode(columns["anchor"][:1], "query")[0]
    d = teacher.encode([columns["negative_2"][0]], "document")[0]
    assert len(columns["label"][0]) == 3
    assert columns["label"][0][2] == pytest.approx(20 * float(q @ d), abs=1e-4)
    reporter = Recorder()
    result = run_finetune(spec, small, tmp_path / "kd", val_split=None, reporter=reporter)
    assert reporter.steps and all(np.isfinite(loss) for _, _, loss, _ in reporter.steps)
    assert is_multi_vector(result.model_dir)
    with pytest.raises(InvalidInput) as caught:
        FinetuneSpec(loss="distillation")
    assert caught.value.param == "loss"

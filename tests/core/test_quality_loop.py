"""The quality loop on a tiny model: merging with the base (LM-Cocktail), re-mining rounds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.embedder import Embedder, load_embedder
from core.training import FinetuneSpec, run_finetune
from core.training.merge import (
    BaseVectors,
    MergeSpec,
    SharedDocuments,
    merge_state_dicts,
    run_merge,
)
from core.training.recipe_search import SearchSpec, search_recipe
from tests.core.test_training import TEXTS, small_dataset

DOCS = ["vitamin D levels in the elderly", "yeast cell protein misfolding"]


@pytest.fixture(scope="module")
def small(sample_dir: Path) -> RetrievalDataset:
    return small_dataset(sample_dir)


@pytest.fixture(scope="module")
def other(sample_dir: Path) -> RetrievalDataset:
    """A forgetting set: the sample's test queries, never trained on."""
    ds = load_dataset(sample_dir)
    test = dict(list(ds.qrels["test"].items())[:30])
    docs = {d for judged in test.values() for d in judged} | set(list(ds.corpus)[:120])
    return RetrievalDataset(
        corpus={d: ds.corpus[d] for d in docs if d in ds.corpus},
        queries={q: ds.queries[q] for q in test},
        qrels={"test": test},
        name="sample-test",
    )


QUICK = {"epochs": 1, "batch_size": 8, "learning_rate": 1e-3, "max_seq_length": 64}
ADAPTER = {"adapter_epochs": 4, "adapter_learning_rate": 1e-2, "num_hard_negatives": 2}


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path) -> FinetuneSpec:
    return FinetuneSpec.from_dict({"base_model": str(tiny_model_dir), **QUICK, **ADAPTER})


@pytest.fixture(scope="module")
def tuned(spec: FinetuneSpec, small: RetrievalDataset, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("tuned")
    return {
        method: run_finetune(replace(spec, method=method), small, out / method).model_dir
        for method in ("full", "adapter")
    }


def fixed_merge(base: Embedder, tuned: Embedder, ds: RetrievalDataset, out: Path, weights):
    """``tuned`` merged with ``base`` at fixed ``weights`` (base first)."""
    spec = MergeSpec(weights=weights)
    return run_merge(base, [tuned], target=(ds, "val"), forgetting=None, output_dir=out, spec=spec)


def vectors(model_dir: Path | str) -> tuple[np.ndarray, np.ndarray]:
    st = SentenceTransformer(str(model_dir), local_files_only=True)
    return st.encode_query(TEXTS), st.encode_document(DOCS)


def test_merged_weights_are_the_weighted_average(
    tiny_model_dir: Path, tuned: dict[str, Path], small: RetrievalDataset, tmp_path: Path
) -> None:
    base, full = load_embedder(str(tiny_model_dir)), load_embedder(str(tuned["full"]))
    result = fixed_merge(base, full, small, tmp_path / "m", (0.3, 0.7))
    merged = SentenceTransformer(str(result.model_dir), local_files_only=True).state_dict()
    a, b = base.st.state_dict(), full.st.state_dict()
    changed = [k for k in a if a[k].is_floating_point() and not torch.equal(a[k], b[k])]
    assert changed  # the fine-tune moved weights, so the average is a real test
    for key in a:
        expected = 0.3 * a[key].double() + 0.7 * b[key].double() if key in changed else a[key]
        torch.testing.assert_close(merged[key].double(), expected.double(), atol=1e-6, rtol=0)
    card = (result.model_dir / "README.md").read_text("utf-8")
    assert "LM-Cocktail" in card and "0.70" in card
    saved = json.loads((result.model_dir / "merge.json").read_text("utf-8"))
    assert saved["weights"] == [0.3, 0.7] and saved["search"] == "fixed"


@pytest.mark.parametrize("method", ["full", "adapter"])
def test_weight_zero_on_the_tuned_model_reproduces_the_base_vectors(
    tiny_model_dir: Path,
    tuned: dict[str, Path],
    small: RetrievalDataset,
    tmp_path: Path,
    method: str,
) -> None:
    base, model = load_embedder(str(tiny_model_dir)), load_embedder(str(tuned[method]))
    result = fixed_merge(base, model, small, tmp_path / "m", (1.0, 0.0))
    queries, docs = vectors(result.model_dir)
    base_queries, base_docs = vectors(tiny_model_dir)
    np.testing.assert_allclose(queries, base_queries, atol=1e-5)
    np.testing.assert_allclose(docs, base_docs, atol=1e-5)
    assert not np.allclose(vectors(tuned[method])[0], base_queries, atol=1e-4)


def test_the_weight_search_keeps_forgetting_within_the_bound(
    tiny_model_dir: Path,
    tuned: dict[str, Path],
    small: RetrievalDataset,
    other: RetrievalDataset,
    tmp_path: Path,
) -> None:
    base, adapter = load_embedder(str(tiny_model_dir)), load_embedder(str(tuned["adapter"]))
    spec = MergeSpec(grid_step=0.25, max_forgetting=0.0)
    result = run_merge(
        base,
        [adapter],
        target=(small, "val"),
        forgetting=(other, "test"),
        output_dir=tmp_path / "m",
        spec=spec,
    )
    assert [c.weights for c in result.candidates] == [
        (1.0, 0.0),
        (0.75, 0.25),
        (0.5, 0.5),
        (0.25, 0.75),
        (0.0, 1.0),
    ]
    assert result.search == "grid" and result.corpus_encodes == 0  # documents are the base's
    assert result.chosen.forgetting >= result.base.forgetting
    allowed = [c for c in result.candidates if c.forgetting >= result.base.forgetting]
    assert result.chosen.target == max(c.target for c in allowed)
    assert result.weights == result.chosen.weights
    # the saved model scores what the search measured
    again = evaluate(small, load_embedder(str(result.model_dir)), EvalSpec(split="val"))
    assert again.metrics["ndcg@10"] == pytest.approx(result.chosen.target, abs=1e-4)
    # the search's shortcut (the adapter head on cached base vectors) is the model itself
    merged = load_embedder(str(result.model_dir))
    shared = SharedDocuments(merged.model, merged.st, "x", docs=BaseVectors(base, None))
    assert shared.head is not None
    for side, texts in (("query", TEXTS), ("document", DOCS)):
        np.testing.assert_allclose(
            shared.encode(texts, side), merged.encode(texts, side), atol=1e-5
        )


def test_models_of_other_architectures_and_bad_weights_are_refused() -> None:
    with pytest.raises(InvalidInput) as err:
        merge_state_dicts([{"w": torch.zeros(2)}, {"w": torch.zeros(3)}], [0.5, 0.5])
    assert err.value.param == "models"
    with pytest.raises(InvalidInput) as err:
        MergeSpec(weights=(0.5, 0.6))
    assert err.value.param == "weights"


@pytest.mark.parametrize("method", ["full", "adapter"])
def test_a_two_round_finetune_records_both_rounds(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path, method: str
) -> None:
    result = run_finetune(replace(spec, method=method, rounds=2), small, tmp_path / "model")
    assert [r["round"] for r in result.rounds] == [1, 2]
    for record in result.rounds:
        assert set(record["metrics_after"]) >= {"ndcg@10", "recall@10"}
        assert record["train_seconds"] > 0
    assert result.rounds[0]["mined"] is None
    mined = result.rounds[1]["mined"]
    assert mined["queries_with_negatives"] > 0 and mined["seconds"] > 0
    assert result.metrics_after == result.rounds[1]["metrics_after"]
    history = json.loads((result.model_dir / "metrics_history.json").read_text("utf-8"))
    assert [r["round"] for r in history["rounds"]] == [1, 2]
    assert not (result.model_dir / "round-2").exists()
    assert "## Rounds" in (result.model_dir / "README.md").read_text("utf-8")
    # the saved model is the round-2 model: it scores as round 2 validated
    again = evaluate(small, load_embedder(str(result.model_dir)), EvalSpec(split="val"))
    assert again.metrics["ndcg@10"] == pytest.approx(
        result.rounds[1]["metrics_after"]["ndcg@10"], abs=1e-4
    )


def test_an_adapter_trains_on_in_batch_negatives_alone(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    """The recipe search may propose 0 hard negatives: the adapter then trains in-batch.
    The tiny random model's rankings are too flat for its validation nDCG to be the check (the
    base scored 0.06 alone and 0.16 inside the suite): its in-batch loss must fall."""
    adapter = replace(spec, method="adapter", num_hard_negatives=0)
    result = run_finetune(adapter, small, tmp_path / "model")
    losses = [entry["loss"] for entry in result.history if "loss" in entry]
    assert len(losses) >= 3 and losses[-1] < 0.8 * losses[0]
    assert (tmp_path / "model" / "embedtune.json").is_file()


def test_rounds_need_a_method_and_loss_that_mine() -> None:
    for bad in ({"rounds": 2, "method": "lora"}, {"rounds": 2, "loss": "cosent"}, {"rounds": 0}):
        with pytest.raises(InvalidInput) as err:
            FinetuneSpec.from_dict(bad)
        assert err.value.param == "rounds"


class _SealedQrels(dict):
    """Judgments whose ``test`` split fails when anything reads it."""

    def __getitem__(self, split: str):
        if split == "test":
            raise AssertionError("the test split was read")
        return super().__getitem__(split)

    def get(self, split: str, default=None):
        if split == "test":
            raise AssertionError("the test split was read")
        return super().get(split, default)

    def items(self):
        raise AssertionError("every split was read")

    def values(self):
        raise AssertionError("every split was read")


def test_the_recipe_search_never_reads_the_test_split(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    sealed = replace(small, qrels=_SealedQrels({**small.qrels, "test": {"q": {"d": 1}}}))
    with pytest.raises(AssertionError):
        sealed.qrels["test"]  # the guard works
    base = replace(spec, method="adapter", adapter_epochs=5)
    found = search_recipe(
        base,
        sealed,
        tmp_path / "search",
        train_split="train",
        val_split="val",
        spec=SearchSpec(trials=3, params=("learning_rate", "epochs", "num_hard_negatives")),
    )
    assert len(found.trials) == 3 and found.trials[0]["params"] == {
        "adapter_learning_rate": base.adapter_learning_rate,
        "adapter_epochs": 5,
        "num_hard_negatives": base.num_hard_negatives,
    }
    assert found.value == max(t["value"] for t in found.trials) >= found.default_value
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == ["model"]
    recipe = json.loads((found.model_dir / "recipe.json").read_text("utf-8"))
    reused = FinetuneSpec.from_dict(recipe["recipe"])  # the recipe is a spec, ready to reuse
    assert reused.adapter_learning_rate == found.params["adapter_learning_rate"]
    again = evaluate(small, load_embedder(str(found.model_dir)), EvalSpec(split="val"))
    assert again.metrics["ndcg@10"] == pytest.approx(found.value, abs=1e-4)


def test_a_search_budget_in_minutes_stops_starting_trials(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    base = replace(spec, method="adapter", adapter_epochs=5)
    budget = SearchSpec(trials=50, minutes=0.01, params=("learning_rate",))
    found = search_recipe(
        base, small, tmp_path / "s", train_split="train", val_split="val", spec=budget
    )
    assert len(found.trials) == 1  # 0.6 s: the first trial ran, no other started
    with pytest.raises(InvalidInput) as err:
        SearchSpec(params=("dropout",))
    assert err.value.param == "params"


def test_cli_merges_against_a_forgetting_set_and_searches_a_recipe(
    tiny_model_dir: Path,
    tuned: dict[str, Path],
    small: RetrievalDataset,
    other: RetrievalDataset,
    tmp_path: Path,
) -> None:
    from core.datasets.io import save_dataset

    data, forget = tmp_path / "data", tmp_path / "other"
    save_dataset(small, data, "beir")
    save_dataset(replace(other, qrels={"train": other.qrels["test"]}), forget, "beir")
    root = Path(__file__).resolve().parents[2]
    env = {
        **os.environ,
        "EMBEDTUNE_DATA_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(root),
        "COLUMNS": "160",
    }

    def embedtune(*args: str) -> str:
        command = [sys.executable, "-m", "cli", *args]
        done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    merged = tmp_path / "merged"
    out = embedtune(
        "merge", "-d", str(data), "-m", str(tiny_model_dir), "-t", str(tuned["adapter"]),
        "--forgetting", str(forget), "--grid-step", "0.5", "-o", str(merged),
    )  # fmt: skip
    saved = json.loads((merged / "merge.json").read_text("utf-8"))
    assert len(saved["candidates"]) == 3 and "LM-Cocktail" in out
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"max_seq_length": 64, "adapter_epochs": 2}), "utf-8")
    out = embedtune(
        "search", "-d", str(data), "-m", str(tiny_model_dir), "--method", "adapter",
        "--trials", "1", "--params", "learning_rate", "--spec-file", str(start),
        "-o", str(tmp_path / "search"),
    )  # fmt: skip
    assert "trial 0:" in out and (tmp_path / "search" / "model" / "recipe.json").is_file()

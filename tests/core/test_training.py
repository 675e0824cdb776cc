"""Fine-tuning end to end on a tiny model: each method learns, saves safely, reloads exactly,
reports progress, stops on cancel and resumes."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.split import split_by_query
from core.errors import Cancelled, InvalidInput
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.embedder import load_embedder
from core.models.loading import PICKLE_SUFFIXES
from core.training import FinetuneSpec, run_finetune
from core.training.lora import save_merged

TEXTS = ["protein folding in yeast cells", "a randomized trial of vitamin D in adults"]


class Recorder:
    """A reporter that keeps everything it is told."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, int, float, float]] = []
        self.evals: list[tuple[int, dict[str, float]]] = []
        self.events: list[str] = []
        self.progress: list[tuple[str, int, int]] = []

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        self.steps.append((step, total, loss, lr))

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self.evals.append((step, metrics))

    def on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress.append((stage, done, total))

    def on_event(self, message: str) -> None:
        self.events.append(message)


def small_dataset(sample_dir: Path, queries: int = 48, others: int = 150) -> RetrievalDataset:
    """``queries`` judged train queries of the sample over their positives and ``others``
    documents, 3 random negatives each, split 75/25 by query."""
    ds = load_dataset(sample_dir)
    rng = random.Random(0)
    train = dict(list(ds.qrels["train"].items())[:queries])
    positives = {d for judged in train.values() for d in judged}
    rest = [d for d in ds.corpus if d not in positives][:others]
    small = RetrievalDataset(
        corpus={d: ds.corpus[d] for d in [*positives, *rest]},
        queries={q: ds.queries[q] for q in train},
        qrels={"train": train},
        negatives={q: rng.sample(rest, 3) for q in train},
        name="scifact-tiny",
        source_format="beir",
    )
    return split_by_query(small, val_fraction=0.25)


@pytest.fixture(scope="module")
def small(sample_dir: Path) -> RetrievalDataset:
    """48 judged train queries over ~200 documents, 3 negatives each, split 36/12."""
    return small_dataset(sample_dir)


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path) -> FinetuneSpec:
    return FinetuneSpec(
        base_model=str(tiny_model_dir),
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        lora_learning_rate=1e-2,
        max_seq_length=64,
        logging_steps=1,
        num_hard_negatives=2,
        adapter_epochs=4,
        adapter_learning_rate=1e-2,
    )


@pytest.fixture(scope="module")
def full_run(spec: FinetuneSpec, small: RetrievalDataset, tmp_path_factory: pytest.TempPathFactory):
    reporter = Recorder()
    out = tmp_path_factory.mktemp("full") / "model"
    return run_finetune(spec, small, out, reporter=reporter), reporter


def loss_fell(reporter: Recorder) -> bool:
    losses = [loss for _, _, loss, _ in reporter.steps]
    return np.mean(losses[-3:]) < np.mean(losses[:3])


def weight_files(model_dir: Path) -> list[str]:
    return sorted(p.name for p in model_dir.rglob("*") if p.suffix in PICKLE_SUFFIXES)


def test_spec_from_plain_dict_and_validation() -> None:
    spec = FinetuneSpec.from_dict({"method": "lora", "epochs": 1, "matryoshka_dims": [64, 32]})
    assert (spec.method, spec.epochs, spec.matryoshka_dims) == ("lora", 1.0, (64, 32))
    assert FinetuneSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    for bad, param in (
        ({"method": "prefix"}, "method"),
        ({"batch_size": 0}, "batch_size"),
        ({"lr": 1e-5}, "lr"),
        ({"epochs": "3"}, "epochs"),
        ({"eval_steps": 10, "save_steps": 15}, "save_steps"),
        ({"method": "adapter", "loss": "cosent"}, "loss"),
    ):
        with pytest.raises(InvalidInput) as caught:
            FinetuneSpec.from_dict(bad)
        assert caught.value.param == param


def test_full_finetune_learns_and_writes_a_safe_loadable_model(
    full_run, small: RetrievalDataset
) -> None:
    result, reporter = full_run
    assert loss_fell(reporter)
    assert [step for step, _ in reporter.evals] == [5, 10]  # once per epoch
    # Progress at every step, whatever the logging interval; the "before" metrics first.
    assert [(d, t) for s, d, t in reporter.progress if s == "train"] == [
        (i, 10) for i in range(1, 11)
    ]
    stages = [s for s, _, _ in reporter.progress]
    assert stages.index("validate before: encode_corpus") < stages.index("train")
    assert result.metrics_after["ndcg@10"] > result.metrics_before["ndcg@10"]
    out = result.model_dir
    assert not weight_files(out) and not (out / "checkpoints").exists()
    assert {"embedtune.json", "README.md", "metrics_history.json"} <= {
        p.name for p in out.iterdir()
    }
    card = (out / "README.md").read_text("utf-8")
    assert "full fine-tune" in card and "| ndcg@10 |" in card and result.method == "full"
    history = json.loads((out / "metrics_history.json").read_text("utf-8"))
    assert history["spec"]["method"] == "full" and history["history"]
    SentenceTransformer(str(out), local_files_only=True).encode_query(TEXTS)
    # The saved model is the best checkpoint: the evaluator scores it as training did.
    reloaded = evaluate(small, load_embedder(str(out)), EvalSpec(split="val"))
    assert reloaded.metrics["ndcg@10"] == pytest.approx(result.metrics_after["ndcg@10"], abs=1e-6)


def test_lora_saves_an_adapter_that_reloads_identically_merged_or_not(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    reporter = Recorder()
    result = run_finetune(replace(spec, method="lora"), small, tmp_path / "lora", reporter=reporter)
    assert loss_fell(reporter)
    out = result.model_dir
    assert (out / "adapter_model.safetensors").is_file() and not weight_files(out)
    assert not (out / "model.safetensors").exists()  # only the adapter is stored
    unmerged = SentenceTransformer(str(out), local_files_only=True)
    merged = SentenceTransformer(str(save_merged(out, tmp_path / "merged")), local_files_only=True)
    base = SentenceTransformer(spec.base_model, local_files_only=True)
    vectors = unmerged.encode_query(TEXTS)
    np.testing.assert_allclose(merged.encode_query(TEXTS), vectors, atol=1e-5)
    assert not np.allclose(base.encode_query(TEXTS), vectors, atol=1e-4)
    assert [type(m).__name__ for m in merged] == [type(m).__name__ for m in base]
    reloaded = evaluate(small, load_embedder(str(out)), EvalSpec(split="val"))
    assert reloaded.metrics["ndcg@10"] == pytest.approx(result.metrics_after["ndcg@10"], abs=1e-6)


@pytest.mark.parametrize("hidden", [None, 16])
def test_adapter_changes_query_vectors_only(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path, hidden: int | None
) -> None:
    reporter = Recorder()
    adapter_spec = replace(spec, method="adapter", adapter_hidden_dim=hidden)
    result = run_finetune(adapter_spec, small, tmp_path / "adapter", reporter=reporter)
    assert loss_fell(reporter)
    assert not weight_files(result.model_dir)
    tuned = SentenceTransformer(str(result.model_dir), local_files_only=True)  # no remote code
    base = SentenceTransformer(spec.base_model, local_files_only=True)
    np.testing.assert_allclose(tuned.encode_document(TEXTS), base.encode_document(TEXTS), atol=1e-6)
    assert not np.allclose(tuned.encode_query(TEXTS), base.encode_query(TEXTS), atol=1e-4)
    reloaded = evaluate(small, load_embedder(str(result.model_dir)), EvalSpec(split="val"))
    assert reloaded.metrics["ndcg@10"] == pytest.approx(result.metrics_after["ndcg@10"], abs=1e-4)


def cancel_after(calls: int):
    seen = []

    def should_cancel() -> bool:
        seen.append(1)
        return len(seen) >= calls

    return should_cancel


@pytest.mark.parametrize("method", ["full", "adapter"])
def test_cancel_stops_within_a_step_and_a_rerun_resumes(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path, method: str
) -> None:
    job = replace(spec, method=method)
    first = Recorder()
    with pytest.raises(Cancelled):
        run_finetune(job, small, tmp_path / "job", reporter=first, should_cancel=cancel_after(3))
    done = first.steps[-1][0]
    assert done <= 3
    second = Recorder()
    result = run_finetune(job, small, tmp_path / "job", reporter=second)
    assert any("resum" in event for event in second.events)
    assert second.steps[0][0] == done + 1
    assert second.steps[-1][0] == second.steps[-1][1]  # ran to the planned last step
    assert result.metrics_after and not (tmp_path / "job" / "checkpoints").exists()


def test_training_encodes_text_exactly_as_evaluation(
    spec: FinetuneSpec, tiny_model_dir: Path
) -> None:
    import torch
    from sentence_transformers.sentence_transformer.data_collator import (
        SentenceTransformerDataCollator,
    )

    from core.training.st_trainer import column_settings

    embedder = load_embedder(str(tiny_model_dir), query_instruction="query: ")
    prompts, routes = column_settings(["anchor", "positive"], embedder.config)
    collate = SentenceTransformerDataCollator(
        embedder.st.preprocess, prompts=prompts, router_mapping=routes
    )
    batch = collate([{"anchor": t, "positive": t} for t in TEXTS])
    with torch.no_grad():
        features = {k.removeprefix("anchor_"): v for k, v in batch.items() if "anchor_" in k}
        trained = embedder.st(features)["sentence_embedding"].numpy()
    np.testing.assert_allclose(trained, embedder.encode(TEXTS, "query"), atol=1e-5)
    assert not np.allclose(trained, embedder.encode(TEXTS, "document"), atol=1e-4)


def test_cached_mnrl_with_matryoshka_and_cosent_on_scored_pairs(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    cached = replace(spec, loss="cached_mnrl", mini_batch_size=4, matryoshka_dims=(32, 16))
    assert run_finetune(cached, small, tmp_path / "cached").metrics_after
    rng = random.Random(0)
    docs = list(small.corpus)
    scores = {q: {d: rng.random() for d in rng.sample(docs, 4)} for q in small.qrels["train"]}
    scored = RetrievalDataset(small.corpus, small.queries, scores=scores, name="scored")
    reporter = Recorder()
    result = run_finetune(
        replace(spec, loss="cosent"), scored, tmp_path / "cosent", reporter=reporter
    )
    assert result.metrics_after == {} and any("no 'val' split" in e for e in reporter.events)
    SentenceTransformer(str(result.model_dir), local_files_only=True).encode(TEXTS)


def test_training_mines_hard_negatives_when_the_data_has_none(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    """The miner itself is tested in test_mining; here: every entry point gets it by default."""
    bare = replace(small, negatives={})
    quick = replace(spec, method="adapter", adapter_epochs=1)
    mined = Recorder()
    run_finetune(quick, bare, tmp_path / "mined", reporter=mined)
    assert any(e.startswith("mined ") and "for 36 'train' queries" in e for e in mined.events)
    mining = [(s, d, t) for s, d, t in mined.progress if s.startswith("mine: ")]
    assert mining[-1] == ("mine: mine", 36, 36)  # documents, then queries, done / total
    assert ("mine: encode_corpus", len(bare.corpus), len(bare.corpus)) in mining
    steps = [d for s, d, _ in mined.progress if s == "train"]  # the adapter's, every one
    assert steps and steps == list(range(1, len(steps) + 1))
    unmined = Recorder()
    run_finetune(replace(quick, mine_negatives=False), bare, tmp_path / "raw", reporter=unmined)
    assert not any(e.startswith("mined ") for e in unmined.events)
    assert any("36 of 36 training queries lack mined negatives" in e for e in unmined.events)


def test_matryoshka_dims_beyond_the_model_are_refused(
    spec: FinetuneSpec, small: RetrievalDataset, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput) as caught:
        run_finetune(replace(spec, matryoshka_dims=(64,)), small, tmp_path / "m")
    assert caught.value.param == "matryoshka_dims"


def test_cli_splits_mines_trains_and_prints_before_after(
    small: RetrievalDataset, tiny_model_dir: Path, tmp_path: Path
) -> None:
    from core.datasets.io import save_dataset

    data = tmp_path / "data"
    unsplit = replace(small, qrels={"train": {**small.qrels["train"], **small.qrels["val"]}})
    save_dataset(replace(unsplit, negatives={}), data, "beir")
    env = {**os.environ, "EMBEDTUNE_DATA_DIR": str(tmp_path / "var"), "COLUMNS": "160"}
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cli.main import main; main()",
            "finetune",
            "--dataset",
            str(data),
            "--model",
            str(tiny_model_dir),
            "--method",
            "adapter",
            "--output",
            str(tmp_path / "model"),
            "--max-seq-length",
            "64",
            "--adapter-epochs",
            "2",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert "held out" in out.stderr and "mined" in out.stderr
    assert "before" in out.stdout and "ndcg@10" in out.stdout
    assert (tmp_path / "model" / "embedtune.json").is_file()


def test_a_tuned_model_worse_than_the_base_on_validation_is_called_out():
    from core.training.finetune import regression_note

    note = regression_note({"ndcg@10": 0.9886}, {"ndcg@10": 0.9857}, "val")
    assert note is not None
    assert "fell from 0.9886 (base model) to 0.9857" in note and "do not deploy" in note
    assert regression_note({"ndcg@10": 0.5}, {"ndcg@10": 0.5}, "val") is None
    assert regression_note({}, {"ndcg@10": 0.5}, None) is None  # no validation split

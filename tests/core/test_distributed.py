"""Data-parallel fine-tuning: two gloo processes (``torchrun``) with the same global batch train
exactly as one process does, stop together on cancel and resume, and pass a rank's error back."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.errors import Cancelled, InvalidInput
from core.models.embedder import load_embedder
from core.training import FinetuneSpec, run_finetune
from core.training.distributed import BUNDLE, EVENT_PREFIX, _messages
from tests.core.test_training import TEXTS, Recorder


@pytest.fixture(scope="module")
def unique(sample_dir: Path) -> RetrievalDataset:
    """24 train queries, each with its own positive and its own negative: no batch ever holds
    a text twice, so batches of 8 and pairs of batches of 4 hold the same rows."""
    ds = load_dataset(sample_dir)
    chosen: dict[str, str] = {}
    for query, judged in ds.qrels["train"].items():
        positive = next(iter(judged))
        if positive not in chosen.values() and len(chosen) < 24:
            chosen[query] = positive
    rest = [d for d in ds.corpus if d not in chosen.values()]
    return RetrievalDataset(
        corpus={d: ds.corpus[d] for d in [*chosen.values(), *rest[:48]]},
        queries={q: ds.queries[q] for q in chosen},
        qrels={"train": {q: {d: 1} for q, d in chosen.items()}},
        negatives={q: [rest[i]] for i, q in enumerate(chosen)},
        name="unique",
        source_format="beir",
    )


@pytest.fixture(scope="module")
def spec(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> FinetuneSpec:
    """The tiny model without dropout, so both runs draw no random numbers while training."""
    base = Path(shutil.copytree(tiny_model_dir, tmp_path_factory.mktemp("ddp") / "base"))
    config = json.loads((base / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (base / "config.json").write_text(json.dumps(config))
    return FinetuneSpec(
        base_model=str(base),
        epochs=2,
        batch_size=8,
        learning_rate=1e-3,
        max_seq_length=32,
        logging_steps=1,
        mine_negatives=False,
        processes=1,
    )


def train(spec: FinetuneSpec, ds: RetrievalDataset, out: Path, **hooks) -> Recorder:
    reporter = Recorder()
    run_finetune(spec, ds, out, val_split=None, reporter=reporter, **hooks)
    return reporter


def test_two_processes_sharing_the_batch_train_as_one(
    spec: FinetuneSpec, unique: RetrievalDataset, tmp_path: Path
) -> None:
    one = train(spec, unique, tmp_path / "one")
    two = train(replace(spec, processes=2), unique, tmp_path / "two")
    assert "training on 2 processes (DDP)" in two.events
    assert [s[:2] for s in two.steps] == [s[:2] for s in one.steps] and len(one.steps) == 6
    np.testing.assert_allclose([s[2] for s in two.steps], [s[2] for s in one.steps], rtol=1e-4)
    assert one.steps[-1][2] < one.steps[0][2]  # it learned, so the match is not trivial
    assert [p[:2] for p in two.progress if p[0] == "train"][-1] == ("train", 6)
    assert not (tmp_path / "two" / BUNDLE).exists()  # the pickled dataset is not a model file
    vectors = [load_embedder(str(tmp_path / n)).encode(TEXTS, "query") for n in ("one", "two")]
    np.testing.assert_allclose(vectors[1], vectors[0], atol=1e-5)


def test_a_cancelled_ddp_run_stops_every_rank_and_resumes(
    spec: FinetuneSpec, unique: RetrievalDataset, tmp_path: Path
) -> None:
    ddp = replace(spec, processes=2, epochs=20)
    reporter = Recorder()
    with pytest.raises(Cancelled):
        run_finetune(
            ddp,
            unique,
            tmp_path,
            val_split=None,
            reporter=reporter,
            should_cancel=lambda: any(p[0] == "train" and p[1] >= 2 for p in reporter.progress),
        )
    stopped = max(p[1] for p in reporter.progress if p[0] == "train")
    assert 2 <= stopped < 60
    resumed = train(ddp, unique, tmp_path)
    assert f"resuming from checkpoint-{stopped}" in resumed.events
    assert resumed.steps[0][0] > stopped and resumed.steps[-1][0] == 60
    assert (tmp_path / "model.safetensors").is_file()


def test_a_ranks_domain_error_reaches_the_job_as_itself(
    spec: FinetuneSpec, unique: RetrievalDataset, tmp_path: Path
) -> None:
    with pytest.raises(InvalidInput) as caught:  # raised inside each rank, by the loss
        train(replace(spec, processes=2, matryoshka_dims=(4096,)), unique, tmp_path)
    assert caught.value.param == "matryoshka_dims"
    with pytest.raises(InvalidInput) as caught:
        replace(spec, processes=3)
    assert caught.value.param == "batch_size"


def test_a_message_behind_another_ranks_unfinished_progress_bar_still_arrives() -> None:
    event = {"call": "on_event", "args": ["resuming from checkpoint-4"]}
    lines = [
        "\rLoading weights:   0%|          | 0/39" + EVENT_PREFIX + json.dumps(event) + "\n",
        "Loading weights: 100%|##########| 39/39\n",
    ]
    tail: list[str] = []
    assert list(_messages(iter(lines), tail)) == [event]
    assert tail == [line.strip() for line in ("\rLoading weights:   0%|          | 0/39", lines[1])]

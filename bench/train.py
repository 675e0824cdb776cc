"""Benchmark `run_finetune` (full) against a plain `SentenceTransformerTrainer` script.

Same process, model, training table (query, positive, one negative per row), batch size, max
length, loss (MNRL) and sampler (no duplicates); runs alternate A/B/A/B... and the best of each
is compared. run_finetune's samples/s excludes its validation passes (it has none here) but
includes its checkpointing and reporting. Target: a ratio >= 0.95.

    python bench/train.py [--dataset ../shared/datasets/scifact] [--rows 192] [--repeats 2]
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import replace
from pathlib import Path

from datasets import Dataset
from sentence_transformers import (
    SentenceTransformer,
    SentenceTransformerTrainer,
    SentenceTransformerTrainingArguments,
)
from sentence_transformers.base.sampler import BatchSamplers
from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.models.resolve import resolve_model
from core.training.finetune import run_finetune
from core.training.spec import FinetuneSpec
from core.training.st_trainer import train_columns

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"


def plain_script(spec: FinetuneSpec, columns: dict[str, list], out: Path) -> float:
    """The textbook recipe: samples/s as the trainer reports it."""
    model = SentenceTransformer(str(resolve_model(spec.base_model).path), device="cpu")
    model.max_seq_length = spec.max_seq_length
    args = SentenceTransformerTrainingArguments(
        output_dir=str(out),
        num_train_epochs=spec.epochs,
        per_device_train_batch_size=spec.batch_size,
        learning_rate=spec.learning_rate,
        warmup_steps=spec.warmup_ratio,
        seed=spec.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        dataloader_pin_memory=False,
    )
    loss = MultipleNegativesRankingLoss(model, scale=spec.scale)
    trainer = SentenceTransformerTrainer(model, args, Dataset.from_dict(columns), loss=loss)
    return trainer.train().metrics["train_samples_per_second"]


def embedtune(spec: FinetuneSpec, ds: RetrievalDataset, out: Path) -> float:
    return run_finetune(spec, ds, out, val_split=None, resume=False).samples_per_second


def subset(ds: RetrievalDataset, rows: int) -> RetrievalDataset:
    train = dict(list(ds.split_qrels("train").items())[:rows])
    return replace(ds, qrels={"train": train})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--rows", type=int, default=192, help="train queries used")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    logging.disable(logging.WARNING)

    ds = subset(load_dataset(args.dataset), args.rows)
    # the same rows for both: random negatives (train_columns' seeded fill), no mining first
    spec = FinetuneSpec(base_model=args.model, epochs=1, num_hard_negatives=1, mine_negatives=False)
    columns = train_columns(spec, ds, "train")
    ours, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            plain.append(plain_script(spec, columns, Path(tmp) / f"plain-{i}"))
            ours.append(embedtune(spec, ds, Path(tmp) / f"embedtune-{i}"))
            print(f"run {i + 1}: plain {plain[-1]:.2f} samples/s, embedtune {ours[-1]:.2f}")
    rows = len(columns["anchor"])
    print(f"{rows} rows x {len(columns)} columns, batch {spec.batch_size}, max len 256, 1 epoch")
    print(f"plain SentenceTransformerTrainer: {max(plain):.2f} samples/s (best of {len(plain)})")
    print(f"embedtune run_finetune (full):    {max(ours):.2f} samples/s (best of {len(ours)})")
    print(f"ratio: {max(ours) / max(plain):.3f} (target >= 0.95)")


if __name__ == "__main__":
    main()

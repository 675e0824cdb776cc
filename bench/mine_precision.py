"""Hard negatives mined with int8 candidates against fp32: how far the mined sets agree.

Mines the train split twice with the default ``MiningSpec``, once with the model in PyTorch
(fp32) and once with its int8 transformer (ONNX Runtime dynamic quantization), and prints the
time of each and the agreement of the negative sets: mean Jaccard per query and the share of
int8 negatives that fp32 also mined. With ``--max-docs`` the corpus is the first N documents
plus every document the split judges.

With the default ``random`` sampling a negative is drawn from ranks 10-100, so two rankings
that differ slightly draw different sets; ``--sampling top`` shows the ranking's agreement.

With ``--finetune`` the split's queries are first divided as the fine-tune job divides them
(80% train, 20% validation, seed 0), only the train part is mined, and each mined set then
trains a full fine-tune (``run_finetune``, checkpoint chosen on the validation part) into
``--output``/fp32 and ``--output``/int8, whose test-split nDCG@10 is printed beside the base
model's.

    python bench/mine_precision.py [--dataset ../shared/datasets/scifact] [--max-docs N]
        [--sampling random|top] [--finetune [--epochs 1] [--max-length 128]]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.split import corpus_subset, split_by_query
from core.evaluation.evaluator import EvalSpec, evaluate
from core.mining import MiningSpec, mine_negatives
from core.models.embedder import load_embedder
from core.serving.runtime import with_runtime
from core.training import FinetuneSpec, run_finetune

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--split", default="train")
    parser.add_argument("--max-docs", type=int, default=0, help="0: the whole corpus")
    parser.add_argument(
        "--sampling",
        choices=("random", "top"),
        default="random",
        help="top: the nearest candidates, so the sets differ only where the rankings do",
    )
    parser.add_argument("--finetune", action="store_true", help="train on each mined set")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--output", type=Path, default=Path("var/mine-precision"))
    args = parser.parse_args()

    ds = corpus_subset(load_dataset(args.dataset), args.split, args.max_docs)
    if args.finetune:
        ds = split_by_query(ds, source=args.split, val_fraction=0.2, seed=0)
    mined_split = "train" if args.finetune else args.split
    fp32 = load_embedder(args.model)
    spec = replace(MiningSpec(), split=mined_split, sampling=args.sampling)
    with tempfile.TemporaryDirectory() as tmp:
        int8 = with_runtime(fp32, Path(tmp), "int8")
        mined, seconds = {}, {}
        for name, embedder in (("fp32", fp32), ("int8", int8)):
            t0 = time.perf_counter()
            mined[name] = mine_negatives(ds, embedder, spec)[0].negatives
            seconds[name] = time.perf_counter() - t0
    queries = [q for q in mined["fp32"] if mined["fp32"][q] or mined["int8"].get(q)]
    jaccard, shared, total = 0.0, 0, 0
    for q in queries:
        a, b = set(mined["fp32"].get(q, [])), set(mined["int8"].get(q, []))
        jaccard += len(a & b) / max(len(a | b), 1)
        shared, total = shared + len(a & b), total + len(b)
    print(
        f"dataset {args.dataset.name} [{args.split}]: {len(queries)} queries, "
        f"{len(ds.corpus)} documents; model {args.model}; sampling {args.sampling}"
        + (" (the 80% train part)" if args.finetune else "")
    )
    print(
        f"mining seconds: fp32 {seconds['fp32']:.1f}, int8 {seconds['int8']:.1f} "
        f"(int8/fp32 {seconds['int8'] / seconds['fp32']:.3f})"
    )
    print(
        f"agreement: mean Jaccard {jaccard / max(len(queries), 1):.3f}; "
        f"{shared} of {total} int8 negatives also mined at fp32 ({shared / max(total, 1):.1%})"
    )
    if args.finetune:
        compare_finetunes(ds, mined, args)


def compare_finetunes(
    ds: RetrievalDataset, mined: dict[str, dict], args: argparse.Namespace
) -> None:
    """A full fine-tune on each mined set; test nDCG@10 of each beside the base model's."""
    spec = FinetuneSpec(
        base_model=args.model,
        epochs=args.epochs,
        max_seq_length=args.max_length,
        mine_negatives=False,
    )
    test = EvalSpec(split="test")
    # The base at the tuned models' max length, so that the line is their like-for-like baseline.
    base = load_embedder(args.model, max_seq_length=args.max_length)
    base_ndcg = evaluate(ds, base, test).metrics["ndcg@10"]
    print(f"test nDCG@10: base {base_ndcg:.4f} (max length {args.max_length})", flush=True)
    for name, negatives in mined.items():
        t0 = time.perf_counter()
        out = args.output / name
        run = run_finetune(spec, replace(ds, negatives=negatives), out, val_split="val")
        tuned = evaluate(ds, load_embedder(str(out)), test).metrics["ndcg@10"]
        print(
            f"fine-tuned on {name}-mined negatives ({out}): test nDCG@10 {tuned:.4f}, "
            f"validation {run.metrics_before.get('ndcg@10', 0):.4f} -> "
            f"{run.metrics_after.get('ndcg@10', 0):.4f}, {time.perf_counter() - t0:.0f} s",
            flush=True,
        )


if __name__ == "__main__":
    main()

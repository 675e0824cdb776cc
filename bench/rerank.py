"""Retrieve → rerank on SciFact: train a cross-encoder, rerank several first stages, fuse.

Trains with ``run_rerank_finetune`` on SciFact's train queries (the 20% validation split that
the fine-tune and compare jobs hold out, seed 0, picks the checkpoint and the fusion weight),
then, for each first stage, reranks its top k on the test split and prints nDCG@10 of the first
stage, the raw reranked list and the fused one, with the fusion weight chosen on the validation
queries of that first stage and the rerank latency per query. First stages: ``base`` (the
packaged all-MiniLM-L6-v2), ``nudge-n`` (NUDGE-N on the base embeddings; its validation run
comes from a NUDGE fitted on the training queries only, so the validation queries are unseen
like the test ones) and ``full=DIR`` (a fine-tuned bi-encoder directory).

    python bench/rerank.py --output var/rerank-scifact --loss lambda --epochs 1
    python bench/rerank.py --reranker var/rerank-scifact --first base,nudge-n   # no training
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace
from pathlib import Path

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.split import split_by_query
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.metrics import Run
from core.models.cache import EmbeddingCache
from core.models.embedder import load_embedder
from core.nudge import NudgeSpec, run_nudge
from core.reranking.evaluate import RerankReport, evaluate_reranked
from core.reranking.finetune import run_rerank_finetune
from core.reranking.reranker import load_reranker
from core.reranking.spec import DEFAULT_MODEL, RerankSpec

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"
CACHE = Path("var/cache/embeddings")


def first_stage_runs(
    name: str, ds: RetrievalDataset, split_ds: RetrievalDataset, top_k: int, cache: EmbeddingCache
) -> tuple[str, Run, Run]:
    """(label, validation run, test run) of one first stage."""
    if name == "base" or name.startswith("full="):
        ref = DEFAULT_MODEL if name == "base" else name.split("=", 1)[1]
        embedder = load_embedder(ref, max_seq_length=256)
        spec = EvalSpec(top_k=top_k, count_truncated=False)
        val = evaluate(split_ds, embedder, replace(spec, split="val"), cache=cache).run()
        test = evaluate(ds, embedder, replace(spec, split="test"), cache=cache).run()
        return ref, val, test
    if name == "nudge-n":
        embedder = load_embedder(DEFAULT_MODEL)
        train_only = replace(
            split_ds, qrels={"train": split_ds.qrels["train"], "val": split_ds.qrels["val"]}
        )
        val = run_nudge(train_only, embedder, NudgeSpec(test_split="val"), cache=cache).test_report
        test = run_nudge(ds, embedder, NudgeSpec(test_split="test"), cache=cache).test_report
        assert val is not None and test is not None
        return "NUDGE-N (all-MiniLM-L6-v2)", val.run(), test.run()
    raise SystemExit(f"unknown first stage {name!r}")


def line(report: RerankReport) -> str:
    m = report.metrics
    return (
        f"{report.first_stage:<40} {m['first_stage']['ndcg@10']:.4f}  "
        f"{m['reranked']['ndcg@10']:.4f}  {m['fused']['ndcg@10']:.4f}  w={report.weight:.2f}  "
        f"{report.latency['mean_ms']:.0f} ms/query  {'helps' if report.helps else 'does not help'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--output", type=Path, default=Path("var/rerank-scifact"))
    parser.add_argument("--reranker", help="an existing reranker: skip training")
    parser.add_argument("--first", default="base,nudge-n")
    parser.add_argument("--top-k", type=int, default=20)
    parser.add_argument("--loss", default="bce")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=4)
    parser.add_argument("--teacher", default=None)
    parser.add_argument("--report", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cache = EmbeddingCache(CACHE)
    ds = load_dataset(args.dataset)
    split_ds = split_by_query(ds, source="train", val_fraction=0.2, seed=0)
    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    reranker_dir = args.reranker
    if reranker_dir is None:
        spec = RerankSpec(
            loss=args.loss,
            epochs=args.epochs,
            learning_rate=args.lr,
            batch_size=args.batch_size,
            max_seq_length=args.max_length,
            num_negatives=args.negatives,
            candidates=args.top_k,
            teacher_model=args.teacher,
        )
        t0 = time.perf_counter()
        result = run_rerank_finetune(spec, split_ds, args.output, cache=cache)
        results["train"] = {**result.to_dict(), "wall_seconds": time.perf_counter() - t0}
        results["train"].pop("history")
        print(
            "validation before/after:",
            result.metrics_before.get("ndcg@10"),
            result.metrics_after.get("ndcg@10"),
        )
        print(
            "fusion on validation:",
            json.dumps({k: v for k, v in result.fusion.items() if k != "curve"}),
        )
        reranker_dir = str(args.output)
    reranker = load_reranker(reranker_dir)
    print(f"{'first stage':<40} first   reranked fused")
    results["rerank"] = []
    for name in args.first.split(","):
        label, val, test = first_stage_runs(name, ds, split_ds, args.top_k, cache)
        # The fine-tune chose its weight on exactly the base model's validation top k.
        saved = name == "base" and args.reranker is None
        report = evaluate_reranked(
            ds_with_val(ds, split_ds),
            reranker,
            test,
            split="test",
            first_stage=label,
            top_k=args.top_k,
            first_val=None if saved else val,
            val_split=None if saved else "val",
            weight=reranker.fusion_weight() if saved else None,
            cache=cache,
        )
        print(line(report), flush=True)
        results["rerank"].append({k: v for k, v in report.to_dict().items() if k != "per_query"})
        out = args.report or args.output / "bench-rerank.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1), "utf-8")


def ds_with_val(ds: RetrievalDataset, split_ds: RetrievalDataset) -> RetrievalDataset:
    """SciFact with its test split and the validation split the reranker was chosen on."""
    return replace(ds, qrels={**ds.qrels, "val": split_ds.qrels["val"]})


if __name__ == "__main__":
    main()

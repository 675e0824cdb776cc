"""Hard negatives mined with int8 candidates against fp32: how far the mined sets agree.

Mines the train split twice with the default ``MiningSpec``, once with the model in PyTorch
(fp32) and once with its int8 transformer (ONNX Runtime dynamic quantization), and prints the
time of each and the agreement of the negative sets: mean Jaccard per query and the share of
int8 negatives that fp32 also mined. With ``--max-docs`` the corpus is the first N documents
plus every document the split judges.

With the default ``random`` sampling a negative is drawn from ranks 10-100, so two rankings
that differ slightly draw different sets; ``--sampling top`` shows the ranking's agreement.

    python bench/mine_precision.py [--dataset ../shared/datasets/scifact] [--max-docs N]
        [--sampling random|top]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core.datasets.io import load_dataset
from core.datasets.split import corpus_subset
from core.mining import MiningSpec, mine_negatives
from core.models.embedder import load_embedder
from core.serving.runtime import with_runtime

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
    args = parser.parse_args()

    ds = corpus_subset(load_dataset(args.dataset), args.split, args.max_docs)
    fp32 = load_embedder(args.model)
    spec = replace(MiningSpec(), split=args.split, sampling=args.sampling)
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
    )
    print(
        f"mining seconds: fp32 {seconds['fp32']:.1f}, int8 {seconds['int8']:.1f} "
        f"(int8/fp32 {seconds['int8'] / seconds['fp32']:.3f})"
    )
    print(
        f"agreement: mean Jaccard {jaccard / max(len(queries), 1):.3f}; "
        f"{shared} of {total} int8 negatives also mined at fp32 ({shared / max(total, 1):.1%})"
    )


if __name__ == "__main__":
    main()

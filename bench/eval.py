"""Benchmark `embedtune eval` against sentence-transformers' InformationRetrievalEvaluator.

Same dataset, model and process: time for encode + index + search + metrics, the ratio of the
two, the cached second run as a ratio to the first, and how closely the nDCG@10 figures agree.
Then the same cold evaluation with the transformer in ONNX Runtime at fp32 (what jobs use
where it is faster) and at int8 (for mining candidates only: never a reported figure), with
the int8 vectors' cosine to fp32.

    python bench/eval.py [--dataset ../shared/datasets/scifact] [--model REF] [--split test]
                         [--max-docs N]   # the first N documents plus every judged one
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from sentence_transformers.sentence_transformer.evaluation import InformationRetrievalEvaluator

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.split import corpus_subset
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.serving.onnx import OnnxEncoder
from core.serving.runtime import with_runtime

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--split", default="test")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-docs", type=int, default=0, help="0: the whole corpus")
    args = parser.parse_args()

    ds = corpus_subset(load_dataset(args.dataset), args.split, args.max_docs)
    embedder = load_embedder(args.model, batch_size=args.batch_size)
    spec = EvalSpec(split=args.split)
    with tempfile.TemporaryDirectory() as tmp:
        cache = EmbeddingCache(Path(tmp))
        t0 = time.perf_counter()
        first = evaluate(ds, embedder, spec, cache=cache)
        t_first = time.perf_counter() - t0
        t0 = time.perf_counter()
        second = evaluate(ds, embedder, spec, cache=cache)
        t_cached = time.perf_counter() - t0

    qrels = ds.split_qrels(args.split)
    judged = {q: {d for d, g in r.items() if g > 0} for q, r in qrels.items()}
    judged = {q: docs for q, docs in judged.items() if docs}
    st_eval = InformationRetrievalEvaluator(
        queries={q: ds.queries[q].text for q in judged},
        corpus={d: doc.full_text for d, doc in ds.corpus.items()},
        relevant_docs=judged,
        batch_size=args.batch_size,
        show_progress_bar=False,
        name="st",
    )
    t0 = time.perf_counter()
    st_scores = st_eval(embedder.st)
    t_st = time.perf_counter() - t0
    st_ndcg = st_scores["st_cosine_ndcg@10"]

    print(
        f"dataset {args.dataset.name} [{args.split}]: {first.num_queries} queries, "
        f"{first.num_documents} documents; model {args.model}"
    )
    print(f"{'run':<44}{'seconds':>10}{'ratio':>10}{'nDCG@10':>10}")
    rows = [
        ("InformationRetrievalEvaluator", t_st, 1.0, st_ndcg),
        ("embedtune evaluate (cold cache)", t_first, t_first / t_st, first.metrics["ndcg@10"]),
        ("embedtune evaluate (warm cache)", t_cached, t_cached / t_st, second.metrics["ndcg@10"]),
    ]
    for name, seconds, ratio, ndcg in rows:
        print(f"{name:<44}{seconds:>10.2f}{ratio:>10.3f}{ndcg:>10.4f}")
    print(
        f"warm / cold: {t_cached / t_first:.3f}; cold stages: "
        + ", ".join(f"{k} {v:.2f}s" for k, v in first.timings.items())
    )
    print(f"|nDCG@10 ours - sentence-transformers| = {abs(first.metrics['ndcg@10'] - st_ndcg):.5f}")
    _runtimes(ds, embedder, spec, t_st, first.metrics["ndcg@10"])


def _runtimes(
    ds: RetrievalDataset, embedder: Embedder, spec: EvalSpec, t_st: float, ndcg: float
) -> None:
    """Cold evaluations with the transformer in ONNX Runtime, fp32 then int8."""
    import numpy as np

    with tempfile.TemporaryDirectory() as tmp:
        onnx_dir = Path(tmp)
        fp32 = OnnxEncoder.build(embedder, onnx_dir, embedder.batch_size)
        if fp32 is None:
            print("ONNX Runtime: not applicable to this model")
            return
        onnx = replace(embedder, runtime=fp32)
        int8 = with_runtime(embedder, onnx_dir, "int8")
        rows = []
        for name, candidate in (("ONNX Runtime fp32", onnx), ("ONNX Runtime int8 (mining)", int8)):
            t0 = time.perf_counter()
            report = evaluate(ds, candidate, spec, cache=EmbeddingCache(onnx_dir / name))
            rows.append((name, time.perf_counter() - t0, report.metrics["ndcg@10"]))
        sample = [d.full_text for d in list(ds.corpus.values())[:512]]
        a, b = embedder.encode(sample, "document"), int8.encode(sample, "document")
        cos = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    for name, seconds, value in rows:
        label = f"embedtune evaluate, {name}"
        print(f"{label:<44}{seconds:>10.2f}{seconds / t_st:>10.3f}{value:>10.4f}")
    print(
        f"int8 vs fp32 (PyTorch): cosine mean {cos.mean():.4f}, min {cos.min():.4f} on "
        f"{len(sample)} documents; nDCG@10 change {100 * (rows[1][2] - ndcg):+.2f} points"
    )


if __name__ == "__main__":
    main()

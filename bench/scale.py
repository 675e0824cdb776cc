"""Past one machine, by simulation on the real engines: a 1M-vector corpus through the embedding
cache and every index kind, and one corpus encoded in shards by 1 and by 2 workers.

Part 1 (vectors): ``--vectors`` synthetic ``--dim``-d unit vectors (a mixture of 2,000
Gaussian clusters, so that approximate indexes face the structure real embeddings have, not
uniform noise) are written to an ``EmbeddingCache`` with ``fill`` (one shard per chunk), then
gathered into a memory-mapped file. Each index kind is built from that file in its own
process, which reports its build seconds, peak RSS, search queries/s over ``--queries``
held-out queries (near the clusters, not corpus rows), recall@10 against exact search on
those queries, and the recall@10 the index measured itself at build time.

Part 2 (workers): ``--docs`` SciFact-sample documents encoded with all-MiniLM-L6-v2 into a
fresh cache: unsharded by one process, then as ``--shards`` shard jobs' bodies
(``EmbeddingCache.fill`` over ``shard_slice``) by 1 and by 2 worker processes of one torch
thread each, taking shards from a shared queue. Shard overhead = sharded 1-worker seconds
over unsharded; speed-up = 1 worker over 2 workers.

    nice -n 10 python bench/scale.py                     # defaults below; JSON in bench/results/
    python bench/scale.py --vectors 100000 --docs 400    # a quick look
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import queue
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.indexing.faiss_index import IndexSpec, VectorIndex  # noqa: E402
from core.models.cache import CacheKey, EmbeddingCache  # noqa: E402

KINDS = ("flat", "ivf", "ivfpq", "hnsw")
CLUSTERS, NOISE, CHUNK = 2000, 0.35, 65_536
KEY = CacheKey("synthetic", "", 0, True)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def centers(dim: int) -> np.ndarray:
    return _unit(np.random.default_rng(0).standard_normal((CLUSTERS, dim)).astype(np.float32))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def synthetic(first: int, n: int, dim: int, seed_offset: int = 0) -> np.ndarray:
    """Rows ``first`` .. ``first + n`` of the synthetic corpus (deterministic by position)."""
    rng = np.random.default_rng(1 + seed_offset + first)
    picks = rng.integers(0, CLUSTERS, n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * (NOISE / np.sqrt(dim) * 4)
    return _unit(centers(dim)[picks] + noise).astype(np.float32)


def write_cache(work: Path, n: int, dim: int) -> dict:
    """Fill the cache with ``n`` vectors ("encoding" = generating them), then gather them."""
    texts = [f"doc {i}" for i in range(n)]
    cache = EmbeddingCache(work / "cache")

    def encode(batch: list[str]) -> np.ndarray:
        return synthetic(int(batch[0].split()[1]), len(batch), dim)

    t0 = time.perf_counter()
    cache.fill(KEY, texts, encode, chunk_size=CHUNK)
    write_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    path = work / "vectors.npy"
    vectors, stats = cache.get_or_encode(
        KEY,
        texts,
        encode,
        out=lambda rows, d: np.lib.format.open_memmap(path, "w+", np.float32, (rows, d)),
    )
    vectors.flush()
    gather_s = time.perf_counter() - t0
    assert stats.misses == 0
    size = sum(p.stat().st_size for p in (work / "cache").rglob("*.npy"))
    return {
        "vectors": n,
        "dim": dim,
        "cache_write_s": round(write_s, 1),
        "cache_gather_to_mmap_s": round(gather_s, 1),
        "cache_mb": round(size / 2**20),
        "peak_rss_mb": round(peak_rss_mb()),
    }


def index_phase(work: Path, kind: str, queries: int, nlist: int | None) -> dict:
    """One index kind, in this (child) process: build, search, recall vs the exact truth."""
    import faiss

    faiss.omp_set_num_threads(2)
    vectors = np.load(work / "vectors.npy", mmap_mode="r")
    ids = [str(i) for i in range(len(vectors))]
    q = synthetic(0, queries, vectors.shape[1], seed_offset=10**9)
    t0 = time.perf_counter()
    index = VectorIndex.build(vectors, ids, IndexSpec(kind=kind, nlist=nlist))
    build_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    hits, _ = index.search(q, 10)
    search_s = time.perf_counter() - t0
    found = [[int(h) for h in row] for row in hits]
    truth_file = work / "truth.json"
    if kind == "flat":
        truth_file.write_text(json.dumps(found))
    elif not truth_file.is_file():  # --kinds without flat: exact search here, untimed
        exact, _ = VectorIndex.build(vectors, ids, IndexSpec(kind="flat")).search(q, 10)
        truth_file.write_text(json.dumps([[int(h) for h in row] for row in exact]))
    truth = json.loads(truth_file.read_text())
    recall = np.mean([len(set(f) & set(t)) / 10 for f, t in zip(found, truth, strict=True)])
    return {
        "kind": kind,
        "build_s": round(build_s, 1),
        "queries_per_s": round(queries / search_s, 1),
        "recall_at_10": round(float(recall), 4),
        "recall_at_10_at_build": index.quality["recall_at_10"],
        "peak_rss_mb": round(peak_rss_mb()),
        "spec": {k: v for k, v in vars(index.spec).items() if v is not None},
    }


def encode_worker(args: tuple) -> None:
    """One simulated worker: load the model, say so, wait for the start, then take shards
    from the queue and run the shard job's body (``EmbeddingCache.fill`` over its slice)."""
    model, cache_dir, texts, shards, todo, ready, go = args
    import torch

    from core.evaluation.evaluator import cache_key
    from core.jobs.kinds.encode import shard_slice
    from core.models.embedder import load_embedder

    torch.set_num_threads(1)
    embedder = load_embedder(model, batch_size=32, max_seq_length=128)
    key, cache = cache_key(embedder, "document"), EmbeddingCache(cache_dir)
    ready.put(1)
    go.wait()
    while True:
        try:
            shard = todo.get(timeout=1)
        except queue.Empty:
            return
        piece = texts[shard_slice(len(texts), shard, shards)]
        cache.fill(key, piece, lambda b: embedder.encode(b, "document"), chunk_size=4096)


def encode_run(model: str, cache_dir: Path, texts: list[str], workers: int, shards: int) -> float:
    """Seconds from every worker having loaded its model to the last shard being cached."""
    ctx = mp.get_context("spawn")
    todo, ready, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    for shard in range(shards):
        todo.put(shard)
    args = (model, cache_dir, texts, shards, todo, ready, go)
    procs = [ctx.Process(target=encode_worker, args=(args,)) for _ in range(workers)]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=600)
    t0 = time.perf_counter()
    go.set()
    for p in procs:
        p.join()
        assert p.exitcode == 0
    seconds = time.perf_counter() - t0
    key_dirs = list(cache_dir.iterdir())
    cached = sum(len(np.load(k)) for d in key_dirs for k in d.glob("*.keys.npy"))
    assert cached == len(set(texts)), (cached, len(set(texts)))
    return seconds


def encode_phase(work: Path, model: str, docs: int, shards: int) -> dict:
    from core.datasets.io import load_dataset

    ds = load_dataset(REPO / "data" / "scifact-sample")
    texts = [d.full_text for d in list(ds.corpus.values())[:docs]]
    runs = {}
    for label, workers, count in (
        ("unsharded", 1, 1),
        ("1 worker", 1, shards),
        ("2 workers", 2, shards),
    ):
        runs[label] = round(
            encode_run(model, work / f"enc-{workers}-{count}", texts, workers, count), 1
        )
        print(f"  encode {label}: {runs[label]} s", flush=True)
    return {
        "documents": len(texts),
        "shards": shards,
        "seconds_after_model_load": runs,
        "shard_overhead": round(runs["1 worker"] / runs["unsharded"], 3),
        "speedup_2_workers": round(runs["1 worker"] / runs["2 workers"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vectors", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument(
        "--nlist", type=int, default=None, help="IVF lists (default: the product's 4 * sqrt(n))"
    )
    parser.add_argument("--docs", type=int, default=600)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--work", type=Path, default=None, help="Scratch dir (default: a temp)")
    parser.add_argument("--phase", help=argparse.SUPPRESS)  # internal: one index kind
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "scale.json")
    args = parser.parse_args()
    if args.phase:
        print(json.dumps(index_phase(args.work, args.phase, args.queries, args.nlist)))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="embedtune-scale-"))
    try:
        report = {"encoding": encode_phase(work, args.model, args.docs, args.shards)}
        print(json.dumps(report["encoding"]), flush=True)
        report |= {"cache": write_cache(work, args.vectors, args.dim), "indexes": []}
        print(json.dumps(report["cache"]), flush=True)
        for kind in args.kinds.split(","):
            child = [sys.executable, __file__, "--phase", kind, "--work", str(work)]
            child += ["--queries", str(args.queries)]
            child += ["--nlist", str(args.nlist)] if args.nlist else []
            out = subprocess.run(child, check=True, capture_output=True, text=True)
            report["indexes"].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(json.dumps(report["indexes"][-1]), flush=True)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2))  # after each index: partial runs keep
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()

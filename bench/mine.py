"""Benchmark `embedtune mine` against sentence-transformers' `mine_hard_negatives`.

Same dataset, model, settings and process, both searching an exact faiss flat index: seconds
with encoding (cold caches) and without (warm caches: each loads its saved embeddings), the
ratio of the two, and how much the two negative sets overlap. ``--sweep`` instead measures
what the window, margin and sampling do on the split (the figures behind MiningSpec's
defaults): hidden positives mined as negatives, score distributions, candidates removed.

    python bench/mine.py [--dataset ../shared/datasets/scifact] [--model REF] [--split train]
    python bench/mine.py --sweep
    python bench/mine.py --rerank-filter var/rerank-scifact --val-of-train --split val
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from datasets import Dataset
from sentence_transformers.util import mine_hard_negatives

from core.datasets.io import load_dataset
from core.datasets.model import RetrievalDataset
from core.datasets.split import split_by_query
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec, VectorIndex
from core.mining import (
    MiningReport,
    MiningSpec,
    ScoreSummary,
    Selection,
    mine_negatives,
    select_negatives,
)
from core.mining.miner import query_rng
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "scifact"
FLAT = IndexSpec(kind="flat")
Negatives = dict[str, set[str]]  # query text -> negative texts


def ours(
    ds: RetrievalDataset, embedder: Embedder, spec: MiningSpec, cache: Path
) -> tuple[float, Negatives, MiningReport]:
    t0 = time.perf_counter()
    mined, report = mine_negatives(ds, embedder, spec, cache=EmbeddingCache(cache))
    seconds = time.perf_counter() - t0
    negatives = {
        ds.queries[q].text: {ds.corpus[d].full_text for d in mined.negatives[q]}
        for q in ds.split_qrels(spec.split)
        if q in mined.negatives
    }
    return seconds, negatives, report


def theirs(
    ds: RetrievalDataset, embedder: Embedder, spec: MiningSpec, cache: Path
) -> tuple[float, Negatives]:
    """sentence-transformers on (query, positive) rows of the split, the corpus as candidates."""
    pairs = [
        (ds.queries[q].text, ds.corpus[d].full_text)
        for q, judged in ds.split_qrels(spec.split).items()
        for d, grade in judged.items()
        if grade > 0 and q in ds.queries and d in ds.corpus
    ]
    rows = Dataset.from_dict({"query": [q for q, _ in pairs], "positive": [p for _, p in pairs]})
    random.seed(spec.seed)
    t0 = time.perf_counter()
    out = mine_hard_negatives(
        rows,
        embedder.st,
        corpus=[doc.full_text for doc in ds.corpus.values()],
        range_min=spec.range_min,
        range_max=spec.range_max,
        num_negatives=spec.num_negatives,
        sampling_strategy=spec.sampling,
        relative_margin=spec.relative_margin,
        absolute_margin=spec.absolute_margin,
        max_score=spec.max_score,
        batch_size=embedder.batch_size,
        use_faiss=True,
        cache_folder=str(cache),
        output_format="labeled-pair",
        verbose=False,
    )
    seconds = time.perf_counter() - t0
    negatives: Negatives = {}
    for row in out:
        if row["label"] == 0:
            negatives.setdefault(row["query"], set()).add(row["positive"])
    return seconds, negatives


def overlap(a: Negatives, b: Negatives) -> str:
    shared = sum(len(a[q] & b.get(q, set())) for q in a)
    total_a, total_b = sum(map(len, a.values())), sum(map(len, b.values()))
    union = total_a + total_b - shared
    return f"{shared / max(total_a, 1):.1%} of ours in theirs, Jaccard {shared / max(union, 1):.3f}"


def bench(ds: RetrievalDataset, embedder: Embedder, split: str) -> None:
    spec = MiningSpec(split=split, index=FLAT)
    print(f"{'run':<48}{'ours s':>9}{'theirs s':>10}{'ratio':>8}  overlap")
    with tempfile.TemporaryDirectory() as tmp:
        ours_cache, st_cache = Path(tmp) / "ours", Path(tmp) / "st"
        reports: list[MiningReport] = []
        runs = [
            ("defaults (random), cold: encode + mine", spec),
            ("defaults (random), warm: cached embeddings", spec),
            ("sampling top", dataclasses.replace(spec, sampling="top")),
            ("sampling top, range_min 0", dataclasses.replace(spec, sampling="top", range_min=0)),
        ]
        for name, run_spec in runs:
            t_st, st_negs = theirs(ds, embedder, run_spec, st_cache)
            t_ours, our_negs, report = ours(ds, embedder, run_spec, ours_cache)
            ratio = t_ours / t_st
            print(
                f"{name:<48}{t_ours:>9.2f}{t_st:>10.2f}{ratio:>8.3f}  {overlap(our_negs, st_negs)}"
            )
            reports.append(report)
    for name, report in (("cold", reports[0]), ("warm", reports[1])):
        stages = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
        print(f"ours {name}: {stages}; {report.negatives} negatives, {report.queries} queries")


@dataclass(frozen=True)
class Retrieved:
    """The top-200 of every judged query of a split, and its positives' scores."""

    qids: list[str]
    positives: dict[str, set[str]]
    ids: list[list[str]]
    scores: np.ndarray
    positive_scores: dict[str, dict[str, float]]


def retrieve(ds: RetrievalDataset, embedder: Embedder, split: str, cache: Path) -> Retrieved:
    judged = {q: {d for d, g in r.items() if g > 0} for q, r in ds.split_qrels(split).items()}
    qids = [q for q, docs in judged.items() if docs]
    doc_ids = list(ds.corpus)
    store = EmbeddingCache(cache)
    doc_texts = [ds.corpus[d].full_text for d in doc_ids]
    doc_vecs, _ = encode_cached(embedder, doc_texts, "document", store)
    query_vecs, _ = encode_cached(embedder, [ds.queries[q].text for q in qids], "query", store)
    ids, scores = VectorIndex.build(doc_vecs, doc_ids, FLAT).search(query_vecs, 200)
    row = {d: i for i, d in enumerate(doc_ids)}
    positive_scores = {
        q: {d: float(doc_vecs[row[d]] @ query_vecs[i]) for d in judged[q]}
        for i, q in enumerate(qids)
    }
    return Retrieved(qids, {q: judged[q] for q in qids}, ids, scores, positive_scores)


def sweep(ds: RetrievalDataset, embedder: Embedder, split: str, cache: Path) -> None:
    """Figures for the defaults: top-200 retrieved once, then each setting's filters."""
    got = retrieve(ds, embedder, split, cache)
    ranks = np.asarray(
        [
            r.index(d) if d in r else 200
            for q, r in zip(got.qids, got.ids, strict=True)
            for d in got.positives[q]
        ]
    )
    share = {
        "<10": ranks < 10,
        "10-99": (ranks >= 10) & (ranks < 100),
        "100-199": (ranks >= 100) & (ranks < 200),
        ">=200": ranks >= 200,
    }
    print(
        f"{len(got.qids)} queries, {len(ranks)} positives; positive ranks: "
        + ", ".join(f"{k} {v.mean():.1%}" for k, v in share.items())
    )
    pos = np.asarray([v for s in got.positive_scores.values() for v in s.values()])
    print(f"positive scores: {_fmt(ScoreSummary.of(pos))}")
    print(f"top-200 candidates: {_fmt(ScoreSummary.of(got.scores[np.isfinite(got.scores)]))}")
    print(
        f"{'setting':<34}{'hidden pooled':>14}{'hidden mined':>14}{'negs/q':>7}{'short/0':>9}"
        f"  {'kept negative scores':<38}{'gap':>6}  removed"
    )
    for name, spec in SETTINGS:
        print(_setting_row(name, dataclasses.replace(spec, split=split), got, float(pos.mean())))


SETTINGS = [
    ("0-100 top (no filter)", MiningSpec(range_min=0, sampling="top", relative_margin=None)),
    ("0-100 random", MiningSpec(range_min=0, relative_margin=None)),
    ("10-100 top", MiningSpec(sampling="top", relative_margin=None)),
    ("10-100 random", MiningSpec(relative_margin=None)),
    ("0-100 rel 0.05 top (NV-Retriever)", MiningSpec(range_min=0, sampling="top")),
    ("10-100 rel 0.05 top", MiningSpec(sampling="top")),
    ("10-100 rel 0.05 random (default)", MiningSpec()),
    ("10-100 rel 0.05 random, 7 negs", MiningSpec(num_negatives=7)),
    ("10-100 rel 0.10 random", MiningSpec(relative_margin=0.10)),
    ("10-100 abs 0.05 random", MiningSpec(relative_margin=None, absolute_margin=0.05)),
    ("10-100 max_score 0.6 random", MiningSpec(relative_margin=None, max_score=0.6)),
    ("10-50 rel 0.05 random", MiningSpec(range_max=50)),
    ("10-200 rel 0.05 random", MiningSpec(range_max=200)),
    ("30-200 rel 0.05 random", MiningSpec(range_min=30, range_max=200)),
]


def _setting_row(name: str, spec: MiningSpec, got: Retrieved, pos_mean: float) -> str:
    """Hidden positives (each positive of a multi-positive query hidden in turn): how many
    survive the filters into the pool sampled from and how many are mined, each also as a
    share of the pool or of the negatives; then the outcome with every positive known."""
    pool_spec = dataclasses.replace(
        spec, sampling="top", num_negatives=spec.range_max - spec.range_min
    )
    hidden = Counter()
    counts, negs, removed = [], [], dict.fromkeys(("window", "max_score", "margin"), 0)
    for i, q in enumerate(got.qids):
        known_all = got.positives[q]
        for p in known_all if len(known_all) > 1 else ():
            pool = _select(pool_spec, got, i, known_all - {p}).ids
            sel = _select(spec, got, i, known_all - {p})
            hidden.update(
                n=1, pooled=p in pool, pool=len(pool), mined=p in sel.ids, negs=len(sel.ids)
            )
        sel = _select(spec, got, i, known_all)
        counts.append(len(sel.ids))
        negs.extend(sel.scores)
        for key in removed:
            removed[key] += sel.removed[key]
    counts = np.asarray(counts)
    neg = ScoreSummary.of(np.asarray(negs))
    gone = " ".join(f"{k} {v}" for k, v in removed.items() if v)
    pooled = f"{hidden['pooled']}/{hidden['n']} {hidden['pooled'] / max(hidden['pool'], 1):.2%}"
    mined = f"{hidden['mined']}/{hidden['n']} {hidden['mined'] / max(hidden['negs'], 1):.1%}"
    short = f"{int((counts < spec.num_negatives).sum())}/{int((counts == 0).sum())}"
    return (
        f"{name:<34}{pooled:>14}{mined:>14}{counts.mean():>7.2f}{short:>9}  {_fmt(neg):<38}"
        f"{pos_mean - (neg.mean or 0):>6.3f}  {gone}"
    )


def rerank_filter_rows(
    ds: RetrievalDataset, got: Retrieved, reranker_dir: Path, spec: MiningSpec, margin: float
) -> None:
    """The hidden-positive experiment with and without the reranker filter: each trial mines
    ``OVERSAMPLE`` times the negatives, the reranker drops those scored within ``margin`` of
    the known positives, the first ``num_negatives`` survivors are kept."""
    from core.reranking.mining_filter import OVERSAMPLE
    from core.reranking.reranker import load_reranker

    reranker = load_reranker(str(reranker_dir))
    wide = dataclasses.replace(spec, num_negatives=spec.num_negatives * OVERSAMPLE)
    hidden = Counter()
    for i, q in enumerate(got.qids):
        known_all = got.positives[q]
        for p in known_all if len(known_all) > 1 else ():
            known = known_all - {p}
            plain = _select(spec, got, i, known).ids
            pool = _select(wide, got, i, known).ids
            text = ds.queries[q].text
            scores = reranker.score([(text, ds.corpus[d].full_text) for d in [*known, *pool]])
            lowest = float(scores[: len(known)].min())
            ceiling = lowest - abs(lowest) * margin
            kept = [d for d, v in zip(pool, scores[len(known) :], strict=True) if v <= ceiling]
            kept = kept[: spec.num_negatives]
            hidden.update(
                n=1, plain=p in plain, plain_negs=len(plain), filtered=p in kept, negs=len(kept)
            )
    n = hidden["n"]
    print(f"hidden-positive trials: {n} (multi-positive queries of the split)")
    for name, found, negs in (
        ("mining default", "plain", "plain_negs"),
        (f"+ reranker filter (rel {margin})", "filtered", "negs"),
    ):
        per_trial = hidden[negs] / max(n, 1)
        print(f"  {name:<36} hidden mined {hidden[found]}/{n}  negs/trial {per_trial:.2f}")


def _select(spec: MiningSpec, got: Retrieved, i: int, known: set[str]) -> Selection:
    q = got.qids[i]
    return select_negatives(
        got.ids[i][: spec.range_max],
        got.scores[i][: spec.range_max],
        positives=known,
        duplicates=set(),
        positive_scores=[got.positive_scores[q][d] for d in known],
        spec=spec,
        rng=query_rng(spec.seed, q),
    )


def _fmt(s: ScoreSummary) -> str:
    return f"mean {s.mean:.3f} p10/50/90 {s.p10:.3f}/{s.p50:.3f}/{s.p90:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--model", default="sentence-transformers/all-MiniLM-L6-v2")
    parser.add_argument("--split", default="train")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sweep", action="store_true", help="Measure the filters instead.")
    parser.add_argument("--rerank-filter", type=Path, help="A reranker: hidden positives with it.")
    parser.add_argument("--rerank-margin", type=float, default=0.05)
    parser.add_argument(
        "--val-of-train",
        action="store_true",
        help="Use the 20%% of train queries the fine-tunes hold out (seed 0) as the split 'val'.",
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "embedtune-bench-cache"
    )
    args = parser.parse_args()

    ds = load_dataset(args.dataset)
    if args.val_of_train:
        ds = split_by_query(ds, source="train", val_fraction=0.2, seed=0)
    embedder = load_embedder(args.model, batch_size=args.batch_size)
    print(
        f"dataset {args.dataset.name} [{args.split}]: {len(ds.split_qrels(args.split))} queries, "
        f"{len(ds.corpus)} documents; model {args.model}"
    )
    if args.rerank_filter:
        got = retrieve(ds, embedder, args.split, args.cache)
        spec = MiningSpec(split=args.split)
        rerank_filter_rows(ds, got, args.rerank_filter, spec, args.rerank_margin)
    elif args.sweep:
        sweep(ds, embedder, args.split, args.cache)
    else:
        bench(ds, embedder, args.split)


if __name__ == "__main__":
    main()

"""Retrieve → rerank evaluation: a first stage's top k reordered by a reranker, and fused.

``rerank_run`` reranks any first-stage run (an embedder's ``EvalReport.run()``, a NUDGE
index's run) and times it per query. ``evaluate_reranked`` scores the first stage, the raw
reranked list and the fused list side by side on the test split, with the fusion weight chosen
on a validation run of the same first stage. ``evaluate_candidates`` is reranking-only
evaluation on a dataset that carries its own candidates (judged documents and negatives).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from core.datasets.model import Qrels, RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.metrics import K_VALUES, Run, evaluate_run, rank
from core.evaluation.report import EvalReport, QueryResult
from core.models.cache import EmbeddingCache
from core.reranking.fusion import FusionChoice, choose_weight, fuse, verdict
from core.reranking.reranker import Reranker
from core.reranking.teachers import reranker_scores

Progress = Callable[[int, int], None]
PRIMARY = "ndcg@10"
CANDIDATE_METRICS = ("map", "mrr@10", "ndcg@10")


@dataclass(frozen=True)
class Reranked:
    """A reranked run and the reranker's wall time for each query, in seconds."""

    run: Run
    seconds: dict[str, float]

    def latency(self) -> dict[str, float]:
        """Milliseconds per query (mean, p50, p95) and pairs scored per second."""
        values = np.array(list(self.seconds.values()) or [0.0]) * 1000
        pairs = sum(len(s) for s in self.run.values())
        total = float(values.sum()) / 1000
        return {
            "mean_ms": float(values.mean()),
            "p50_ms": float(np.percentile(values, 50)),
            "p95_ms": float(np.percentile(values, 95)),
            "pairs_per_second": pairs / total if total > 0 else 0.0,
        }


def judged_qrels(ds: RetrievalDataset, split: str) -> Qrels:
    """The split's queries that have a relevant document."""
    return {
        q: r
        for q, r in ds.split_qrels(split).items()
        if q in ds.queries and any(g > 0 for g in r.values())
    }


def rerank_run(
    ds: RetrievalDataset,
    first: Run,
    reranker: Reranker,
    top_k: int,
    progress: Progress | None = None,
    cache: EmbeddingCache | None = None,
) -> Reranked:
    """Each query's ``top_k`` first-stage documents scored by ``reranker``; with ``cache`` a
    pair scored before (by another first stage) is read back, and its time is the lookup's."""
    run: Run = {}
    seconds: dict[str, float] = {}
    for n, (qid, scores) in enumerate(first.items()):
        candidates = rank(scores)[:top_k]
        start = time.perf_counter()
        pairs = [(ds.queries[qid].text, ds.corpus[d].full_text) for d in candidates]
        values = reranker_scores(reranker, pairs, cache)
        seconds[qid] = time.perf_counter() - start
        run[qid] = dict(zip(candidates, map(float, values), strict=True))
        if progress:
            progress(n + 1, len(first))
    return Reranked(run, seconds)


def top(run: Run, k: int) -> Run:
    """Each query's ``k`` best documents of ``run``."""
    return {q: {d: s[d] for d in rank(s)[:k]} for q, s in run.items()}


@dataclass
class RerankReport:
    """First stage, raw reranked and fused metrics of one test split, side by side."""

    reranker: str
    reranker_fingerprint: str
    first_stage: str
    dataset: str
    split: str
    top_k: int
    num_queries: int
    weight: float
    weight_from: str
    metrics: dict[str, dict[str, float]]
    validation: dict[str, Any]
    helps: bool
    verdict: str
    latency: dict[str, float]
    per_query: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def fused_report(self, ds: RetrievalDataset) -> EvalReport:
        """The fused ranking as an ``EvalReport``: summary metrics, and per query its nDCG@10,
        ranked documents and the ranks of its relevant ones (what a comparison reads)."""
        qrels = judged_qrels(ds, self.split)
        per_query = {}
        for qid, entry in self.per_query.items():
            ids = list(entry["top_ids"])
            position = {d: i + 1 for i, d in enumerate(ids)}
            relevant = {d: position.get(d) for d, grade in qrels.get(qid, {}).items() if grade > 0}
            per_query[qid] = QueryResult(
                metrics={PRIMARY: entry["fused"]},
                relevant_ranks=relevant,
                top_ids=ids,
                top_scores=list(entry["top_scores"]),
            )
        return EvalReport(
            model=f"{self.first_stage} reranked by {self.reranker}",
            model_fingerprint=self.reranker_fingerprint,
            dataset=self.dataset,
            split=self.split,
            num_queries=self.num_queries,
            num_documents=len(ds.corpus),
            metrics=dict(self.metrics["fused"]),
            per_query=per_query,
        )


def evaluate_reranked(
    ds: RetrievalDataset,
    reranker: Reranker,
    first_test: Run,
    *,
    split: str,
    first_stage: str,
    top_k: int = 100,
    first_val: Run | None = None,
    val_split: str | None = None,
    weight: float | None = None,
    progress: Progress | None = None,
    cache: EmbeddingCache | None = None,
) -> RerankReport:
    """Rerank ``first_test`` (the ``split`` run) and fuse it with the weight chosen on
    ``first_val`` (the ``val_split`` run of the same first stage), else ``weight`` (the one the
    reranker's fine-tune chose); one of them is required."""
    test_qrels = judged_qrels(ds, split)
    if not test_qrels:
        raise InvalidInput(
            f"split '{split}' has no query with a relevant document",
            code="no_judged_queries",
            param="split",
        )
    choice: FusionChoice | None = None
    if first_val is not None and val_split is not None:
        val_first = top(first_val, top_k)
        val_reranked = rerank_run(ds, val_first, reranker, top_k, cache=cache).run
        choice = choose_weight(val_first, val_reranked, judged_qrels(ds, val_split))
        weight, weight_from = choice.weight, f"validation split '{val_split}'"
    elif weight is not None:
        weight_from = "the reranker's own fine-tune (its validation split)"
    else:
        raise InvalidInput(
            "a reranked evaluation needs a validation split to choose the fusion weight on, or "
            "a reranker trained here (which saved one)",
            code="no_fusion_weight",
            param="val_split",
        )
    first = top({q: first_test.get(q, {}) for q in test_qrels}, top_k)
    reranked = rerank_run(ds, first, reranker, top_k, progress, cache)
    fused = fuse(first, reranked.run, weight)
    metrics, per_query = {}, {}
    for name, run in (("first_stage", first), ("reranked", reranked.run), ("fused", fused)):
        metrics[name], per = evaluate_run(run, test_qrels, K_VALUES)
        for qid, values in per.items():
            per_query.setdefault(qid, {})[name] = values[PRIMARY]
    for qid in per_query:
        ranked = rank(fused.get(qid, {}))
        per_query[qid]["top_ids"] = ranked
        per_query[qid]["top_scores"] = [fused[qid][d] for d in ranked]
    if choice is not None:
        helps = choice.helps
        said = verdict(weight, choice.first_stage[PRIMARY], choice.fused[PRIMARY])
    else:
        helps, said = weight > 0, verdict(weight)
    return RerankReport(
        reranker=reranker.model.ref,
        reranker_fingerprint=reranker.fingerprint,
        first_stage=first_stage,
        dataset=ds.name,
        split=split,
        top_k=top_k,
        num_queries=len(test_qrels),
        weight=weight,
        weight_from=weight_from,
        metrics=metrics,
        validation=choice.to_dict() if choice else {},
        helps=helps,
        verdict=said,
        latency=reranked.latency(),
        per_query=per_query,
    )


def evaluate_candidates(
    ds: RetrievalDataset, reranker: Reranker, split: str, progress: Progress | None = None
) -> dict[str, Any]:
    """Reranking-only evaluation: each query's judged documents and negatives are its
    candidates (MTEB reranking, open-retrievals): MAP, MRR@10 and nDCG@10 over them."""
    qrels = judged_qrels(ds, split)
    first = {
        q: {d: 0.0 for d in [*ds.split_qrels(split)[q], *ds.negatives.get(q, [])] if d in ds.corpus}
        for q in qrels
    }
    if not any(len(c) > 1 for c in first.values()):
        raise InvalidInput(
            f"split '{split}' carries no candidates to rerank (judged documents and negatives)",
            code="no_candidates",
            param="split",
        )
    width = max(len(c) for c in first.values())
    reranked = rerank_run(ds, first, reranker, width, progress)
    means, _ = evaluate_run(reranked.run, qrels, (*K_VALUES, width))
    metrics = {"map": means[f"map@{width}"], "mrr@10": means["mrr@10"], "ndcg@10": means["ndcg@10"]}
    return {
        "metrics": metrics,
        "num_queries": len(qrels),
        "candidates_per_query": sum(len(c) for c in first.values()) / len(first),
        "latency": reranked.latency(),
    }

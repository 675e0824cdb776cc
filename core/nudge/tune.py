"""``run_nudge``: a dataset and a model in, tuned corpus embeddings and their report out."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from core.datasets.model import Qrels, RetrievalDataset
from core.datasets.split import split_by_query
from core.errors import InvalidInput
from core.evaluation.evaluator import encode_cached
from core.evaluation.metrics import K_VALUES, Run
from core.evaluation.report import EvalReport
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.nudge.closed_form import normalize, nudge, query_sums
from core.nudge.scoring import MovingSearch, as_run, per_query_results
from core.nudge.spec import NudgeReport, NudgeSpec

StageProgress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: encode_corpus, encode_queries, tune, test."""
TEST_TOP_K = 100


@dataclass(frozen=True)
class NudgeResult:
    """Tuned embeddings (row i is ``doc_ids[i]``), the report and, with a test split, the
    per-query test results of the tuned embeddings."""

    doc_ids: list[str]
    vectors: np.ndarray
    report: NudgeReport
    test_report: EvalReport | None


@dataclass(frozen=True)
class _Splits:
    fit: Qrels  # queries the step is tuned with
    val: Qrels
    final: Qrels  # queries the returned embeddings move toward


def run_nudge(
    ds: RetrievalDataset,
    embedder: Embedder,
    spec: NudgeSpec,
    *,
    cache: EmbeddingCache | None = None,
    progress: StageProgress | None = None,
) -> NudgeResult:
    """NUDGE the corpus embeddings of ``embedder`` toward ``ds``'s training queries."""
    report = progress or (lambda *_: None)
    splits = _splits(ds, spec)
    test = _judged(ds, ds.split_qrels(spec.test_split)) if spec.test_split else {}
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    doc_ids = list(ds.corpus)
    texts = [ds.corpus[d].full_text for d in doc_ids]
    base = normalize(
        encode_cached(embedder, texts, "document", cache, _on(report, "encode_corpus"))[0]
    )
    timings["encode_corpus"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    train_ids = list(dict.fromkeys([*splits.final, *splits.fit, *splits.val]))
    qvec = _query_vectors(ds, embedder, train_ids, cache, _on(report, "encode_queries"))
    timings["encode_queries"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    step, curve, val_before, val_after = _choose_step(spec, doc_ids, base, splits, qvec, report)
    sums = query_sums(doc_ids, _answers(splits.final), qvec)
    moved = np.linalg.norm(sums, axis=1) > 0
    vectors = base.copy()
    vectors[moved] = nudge(spec.variant, base[moved], sums[moved], step)
    timings["tune"] = time.perf_counter() - t0

    t0 = time.perf_counter()  # the step is fixed: only now are the test queries read
    test_before, test_report = {}, None
    if test:
        test_vecs = _query_vectors(ds, embedder, list(test), cache, _on(report, "test"))
        search = MovingSearch(np.stack(list(test_vecs.values())), base, moved, TEST_TOP_K)
        test_before = _metrics(search, base[moved], list(test), doc_ids, test, K_VALUES)
        run = as_run(list(test), doc_ids, *search.search(vectors[moved]))
        test_report = _report(ds, embedder, spec, run, test, len(doc_ids))
    timings["test"] = time.perf_counter() - t0
    summary = NudgeReport(
        variant=spec.variant,
        model=embedder.model.ref,
        model_fingerprint=embedder.fingerprint,
        dataset=ds.name,
        step=step,
        docs_moved=int((vectors != base).any(axis=1).sum()),
        num_documents=len(doc_ids),
        train_queries=len(splits.final),
        val_queries=len(splits.val),
        metric=spec.metric,
        val_before=val_before,
        val_after=val_after,
        test_before=test_before,
        test_after=test_report.metrics if test_report else {},
        curve=curve,
        timings=timings,
    )
    return NudgeResult(doc_ids, vectors, summary, test_report)


def _on(report: StageProgress, stage: str) -> Callable[[int, int], None]:
    return lambda done, total: report(stage, done, total)


def _query_vectors(
    ds: RetrievalDataset,
    embedder: Embedder,
    query_ids: list[str],
    cache: EmbeddingCache | None,
    progress: Callable[[int, int], None],
) -> dict[str, np.ndarray]:
    texts = [ds.queries[q].text for q in query_ids]
    vectors, _ = encode_cached(embedder, texts, "query", cache, progress)
    return dict(zip(query_ids, normalize(vectors), strict=True))


def _report(
    ds: RetrievalDataset, embedder: Embedder, spec: NudgeSpec, run: Run, test: Qrels, n_docs: int
) -> EvalReport:
    metrics, per_query = per_query_results(run, test, K_VALUES)
    return EvalReport(
        model=embedder.model.ref,
        model_fingerprint=embedder.fingerprint,
        dataset=ds.name,
        split=spec.test_split or "",
        num_queries=len(test),
        num_documents=n_docs,
        metrics=metrics,
        per_query=per_query,
    )


def _choose_step(
    spec: NudgeSpec,
    doc_ids: list[str],
    base: np.ndarray,
    splits: _Splits,
    qvec: dict[str, np.ndarray],
    report: StageProgress,
) -> tuple[float, list[tuple[float, float]], dict[str, float], dict[str, float]]:
    """The candidate step with the best validation metric (the smallest among ties)."""
    sums = query_sums(doc_ids, _answers(splits.fit), qvec)
    moved = np.linalg.norm(sums, axis=1) > 0
    val_ids = list(splits.val)
    search = MovingSearch(np.stack([qvec[q] for q in val_ids]), base, moved, spec.k)
    best: tuple[float, float, dict[str, float]] | None = None
    curve, before = [], {}
    for i, step in enumerate(spec.candidates):
        vectors = nudge(spec.variant, base[moved], sums[moved], step)
        metrics = _metrics(search, vectors, val_ids, doc_ids, splits.val, (spec.k,))
        curve.append((step, metrics[spec.metric]))
        before = metrics if step == 0 else before
        if best is None or metrics[spec.metric] > best[1]:
            best = (step, metrics[spec.metric], metrics)
        report("tune", i + 1, len(spec.candidates))
    assert best is not None  # the spec holds at least one step
    if not before:
        before = _metrics(search, base[moved], val_ids, doc_ids, splits.val, (spec.k,))
    return best[0], curve, before, best[2]


def _metrics(
    search: MovingSearch,
    moved_vecs: np.ndarray,
    query_ids: list[str],
    doc_ids: list[str],
    qrels: Qrels,
    k_values: tuple[int, ...],
) -> dict[str, float]:
    run = as_run(query_ids, doc_ids, *search.search(moved_vecs))
    return per_query_results(run, qrels, k_values)[0]


def _splits(ds: RetrievalDataset, spec: NudgeSpec) -> _Splits:
    """Tuning and validation queries; a held-out share is drawn as the fine-tune jobs draw it
    (``split_by_query`` over the whole train split), so both hold out the same queries."""
    train = ds.split_qrels(spec.train_split)
    if spec.val_split is not None:
        fit, val = train, ds.split_qrels(spec.val_split)
    else:
        held = split_by_query(
            RetrievalDataset(ds.corpus, ds.queries, {"train": train}),
            source="train",
            val_fraction=spec.val_fraction,
            seed=spec.seed,
            names=("fit", "val"),
        )
        fit, val = held.qrels["fit"], held.qrels["val"]
    fit, val, train = _judged(ds, fit), _judged(ds, val), _judged(ds, train)
    if not fit or not val:
        raise InvalidInput(
            "NUDGE needs training and validation queries with relevant documents",
            code="no_judged_queries",
            param="train_split",
        )
    return _Splits(fit, val, train if spec.refit else fit)


def _judged(ds: RetrievalDataset, qrels: Qrels) -> Qrels:
    """The queries of ``qrels`` that exist and have a relevant document (as ``evaluate``)."""
    return {q: r for q, r in qrels.items() if q in ds.queries and any(g > 0 for g in r.values())}


def _answers(qrels: Qrels) -> dict[str, list[str]]:
    return {q: [d for d, g in rel.items() if g > 0] for q, rel in qrels.items()}

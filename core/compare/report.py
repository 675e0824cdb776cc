"""The comparison report: each method against the base model, overall and query by query."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from core.evaluation.metrics import SUMMARY_METRICS
from core.evaluation.report import EvalReport, QueryResult

PER_QUERY_METRIC = "ndcg@10"
TOP_QUERIES = 10  # biggest gains and losses listed per method
TIE = 1e-9
TOP_DOCUMENTS = 3  # documents listed before and after for each query that changed
SNIPPET_CHARS = 120


@dataclass(frozen=True)
class MethodRun:
    """What one method produced: its state, time, test results and forgetting metrics."""

    method: str
    status: str  # succeeded | failed | cancelled
    reencode: bool
    job_id: str | None = None
    wall_seconds: float | None = None
    test: EvalReport | None = None
    forgetting: dict[str, float] | None = None  # on the dataset it was not trained on
    error: str | None = None


@dataclass(frozen=True)
class QueryChange:
    query_id: str
    text: str
    before: float  # PER_QUERY_METRIC of the base model
    after: float
    change: float  # after - before
    rank_before: int | None  # rank of the first relevant document (None: not in the top 100)
    rank_after: int | None
    # The top documents of the base model and of the method: {"id", "title", "relevant"}.
    top_before: list[dict[str, Any]] = field(default_factory=list)
    top_after: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class MethodRow:
    method: str
    status: str
    reencode: bool
    job_id: str | None = None
    wall_seconds: float | None = None
    test: dict[str, float] = field(default_factory=dict)
    change: dict[str, float] = field(default_factory=dict)  # points (x100) against the base
    forgetting: dict[str, float] | None = None
    forgetting_change: dict[str, float] | None = None
    wins: int = 0
    losses: int = 0
    ties: int = 0
    top_gains: list[QueryChange] = field(default_factory=list)
    top_losses: list[QueryChange] = field(default_factory=list)
    error: str | None = None
    precision: str | None = None  # of the test vectors (fp32 unless the compare asked)


@dataclass(frozen=True)
class CompareReport:
    dataset: str
    base_model: str
    test_split: str
    num_queries: int
    forgetting_dataset: str | None
    rows: list[MethodRow]
    best: str | None = None  # highest test PER_QUERY_METRIC
    best_margin: float | None = None  # its lead over the next method, in points
    metrics: tuple[str, ...] = SUMMARY_METRICS

    def row(self, method: str) -> MethodRow:
        return next(r for r in self.rows if r.method == method)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CompareReport:
        rows = []
        for raw in data["rows"]:
            row = dict(raw)
            for key in ("top_gains", "top_losses"):
                row[key] = [QueryChange(**q) for q in row[key]]
            rows.append(MethodRow(**row))
        names = {f.name for f in fields(cls)} - {"rows", "metrics"}
        return cls(**{k: data[k] for k in names}, rows=rows, metrics=tuple(data["metrics"]))


def build_report(
    runs: Sequence[MethodRun],
    *,
    base: str = "base",
    queries: Mapping[str, str],
    dataset: str,
    base_model: str,
    forgetting_dataset: str | None = None,
    documents: Mapping[str, str] | None = None,
) -> CompareReport:
    """Compare every run with the ``base`` run; ``queries`` gives the text of each query id,
    ``documents`` a title (or the start of the text) of each document id."""
    ref = next(r for r in runs if r.method == base)
    if ref.test is None:
        raise ValueError("the base run has no test results")
    texts = _Texts(queries, documents or {})
    rows = [_row(run, ref, texts) for run in runs]
    scored = sorted(
        (r for r in rows if r.test), key=lambda r: r.test[PER_QUERY_METRIC], reverse=True
    )
    margin = None
    if len(scored) > 1:
        margin = 100 * (scored[0].test[PER_QUERY_METRIC] - scored[1].test[PER_QUERY_METRIC])
    return CompareReport(
        dataset=dataset,
        base_model=base_model,
        test_split=ref.test.split,
        num_queries=ref.test.num_queries,
        forgetting_dataset=forgetting_dataset,
        rows=rows,
        best=scored[0].method if scored else None,
        best_margin=margin,
    )


@dataclass(frozen=True)
class _Texts:
    queries: Mapping[str, str]
    documents: Mapping[str, str]

    def top(self, result: QueryResult) -> list[dict[str, Any]]:
        return [
            {
                "id": d,
                "title": self.documents.get(d, "")[:SNIPPET_CHARS],
                "relevant": d in result.relevant_ranks,
            }
            for d in result.top_ids[:TOP_DOCUMENTS]
        ]


def _row(run: MethodRun, ref: MethodRun, texts: _Texts) -> MethodRow:
    common = {
        "method": run.method,
        "status": run.status,
        "reencode": run.reencode,
        "job_id": run.job_id,
        "wall_seconds": run.wall_seconds,
        "error": run.error,
    }
    if run.test is None or ref.test is None:
        return MethodRow(**common)
    test = {m: run.test.metrics[m] for m in SUMMARY_METRICS}
    changes = _query_changes(ref.test.per_query, run.test.per_query, texts)
    gains = sorted((c for c in changes if c.change > TIE), key=lambda c: -c.change)
    losses = sorted((c for c in changes if c.change < -TIE), key=lambda c: c.change)
    return MethodRow(
        **common,
        test=test,
        change=_points(test, ref.test.metrics),
        forgetting=run.forgetting,
        forgetting_change=(
            _points(run.forgetting, ref.forgetting) if run.forgetting and ref.forgetting else None
        ),
        wins=len(gains),
        losses=len(losses),
        ties=len(changes) - len(gains) - len(losses),
        top_gains=gains[:TOP_QUERIES],
        top_losses=losses[:TOP_QUERIES],
        precision=run.test.precision,
    )


def _points(after: Mapping[str, float], before: Mapping[str, float]) -> dict[str, float]:
    return {m: 100 * (after[m] - before[m]) for m in SUMMARY_METRICS if m in after and m in before}


def _query_changes(
    before: Mapping[str, QueryResult], after: Mapping[str, QueryResult], texts: _Texts
) -> list[QueryChange]:
    return [
        QueryChange(
            query_id=qid,
            text=texts.queries.get(qid, ""),
            before=old.metrics[PER_QUERY_METRIC],
            after=after[qid].metrics[PER_QUERY_METRIC],
            change=after[qid].metrics[PER_QUERY_METRIC] - old.metrics[PER_QUERY_METRIC],
            rank_before=_first_rank(old),
            rank_after=_first_rank(after[qid]),
            top_before=texts.top(old),
            top_after=texts.top(after[qid]),
        )
        for qid, old in before.items()
        if qid in after
    ]


def _first_rank(result: QueryResult) -> int | None:
    ranks = [r for r in result.relevant_ranks.values() if r is not None]
    return min(ranks) if ranks else None

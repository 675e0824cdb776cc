"""The comparison report as Markdown: the method table, then wins and losses per method."""

from __future__ import annotations

from core.compare.report import PER_QUERY_METRIC, CompareReport, MethodRow, QueryChange

LABELS = {"ndcg@10": "nDCG@10", "recall@10": "Recall@10", "mrr@10": "MRR@10"}


def to_markdown(report: CompareReport) -> str:
    lines = [
        f"# {report.base_model} on {report.dataset}",
        "",
        f"Test split `{report.test_split}`, {report.num_queries} queries. Changes are in points "
        "(x100) against the base model.",
        "",
        *_table(report),
    ]
    if any(r.precision not in (None, "fp32") for r in report.rows):
        scored = ", ".join(f"{r.method} {r.precision}" for r in report.rows if r.precision)
        lines += ["", f"Precision of the test vectors: {scored}."]
    if errors := [f"- {r.method} {r.status}: {r.error}" for r in report.rows if r.error]:
        lines += ["", *errors]
    if report.best is not None:
        margin = f" by {report.best_margin:+.1f} points" if report.best_margin is not None else ""
        lines += ["", f"Best: **{report.best}**{margin} over the next method."]
    for row in report.rows:
        if row.method != "base" and row.test:
            lines += ["", *_queries(row)]
    return "\n".join(lines) + "\n"


def _table(report: CompareReport) -> list[str]:
    names = [LABELS.get(m, m) for m in report.metrics]
    head = ["method", *names, *(f"Δ {n}" for n in names)]
    if report.forgetting_dataset:
        head += [f"{LABELS.get(m, m)} {report.forgetting_dataset}" for m in report.metrics]
        head.append("Δ forgetting nDCG@10")
    head += ["wall time", "re-encode corpus", "wins / losses"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in report.rows:
        out.append("| " + " | ".join(_cells(row, report)) + " |")
    return out


def _cells(row: MethodRow, report: CompareReport) -> list[str]:
    label = row.method if row.status == "succeeded" else f"{row.method} ({row.status})"
    cells = [label]
    cells += [_num(row.test.get(m)) for m in report.metrics]
    cells += [_signed(row.change.get(m)) for m in report.metrics]
    if report.forgetting_dataset:
        forgetting = row.forgetting or {}
        cells += [_num(forgetting.get(m)) for m in report.metrics]
        cells.append(_signed((row.forgetting_change or {}).get(PER_QUERY_METRIC)))
    wall = f"{row.wall_seconds:.0f} s" if row.wall_seconds is not None else "–"
    counts = f"{row.wins} / {row.losses}" if row.test and row.method != "base" else "–"
    return [*cells, wall, "yes" if row.reencode else "no", counts]


def _queries(row: MethodRow) -> list[str]:
    out = [
        f"## {row.method}: {row.wins} queries gained, {row.losses} lost, {row.ties} unchanged",
    ]
    for title, items in (("Biggest gains", row.top_gains), ("Biggest losses", row.top_losses)):
        if items:
            out += ["", f"{title} ({PER_QUERY_METRIC}, first relevant rank):", ""]
            out += ["| query | before | after | rank |", "|---|---|---|---|"]
            out += [_query_line(q) for q in items]
    return out


def _query_line(q: QueryChange) -> str:
    text = q.text.replace("|", "\\|").replace("\n", " ")
    rank = f"{q.rank_before or '>100'} → {q.rank_after or '>100'}"
    return f"| {text} (`{q.query_id}`) | {q.before:.3f} | {q.after:.3f} | {rank} |"


def _num(value: float | None) -> str:
    return f"{value:.4f}" if value is not None else "–"


def _signed(value: float | None) -> str:
    return f"{value:+.1f}" if value is not None else "–"

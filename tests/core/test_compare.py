"""The comparison report: changes against the base, wins and losses, best method, exports."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from core.compare import CompareReport, MethodRun, build_report, to_markdown
from core.evaluation.report import EvalReport, QueryResult
from tests.cli.test_cli import run_cli

QUERIES = {f"q{i}": f"claim number {i}" for i in range(12)}


def report(per_query: dict[str, float], forgetting: float | None = None) -> EvalReport:
    """An EvalReport whose queries score ``per_query`` nDCG@10 (first relevant at 1/score)."""
    results = {
        q: QueryResult(
            metrics={"ndcg@10": v, "recall@10": v, "mrr@10": v},
            relevant_ranks={"d": round(1 / v) if v else None},
            top_ids=["d"],
            top_scores=[1.0],
        )
        for q, v in per_query.items()
    }
    mean = sum(per_query.values()) / len(per_query)
    return EvalReport(
        model="m",
        model_fingerprint="f",
        dataset="scifact",
        split="test",
        num_queries=len(per_query),
        num_documents=9,
        metrics={"ndcg@10": mean, "recall@10": mean, "mrr@10": mean},
        per_query=results,
    )


BASE = {q: 0.5 for q in QUERIES}
# q0..q10 gain (q10 most), q11 loses
BETTER = {q: (0.5 + 0.04 * (i + 1) if i < 11 else 0.25) for i, q in enumerate(QUERIES)}


@pytest.fixture
def compared() -> CompareReport:
    runs = [
        MethodRun("base", "succeeded", False, "j0", 1.0, report(BASE), {"ndcg@10": 0.4}),
        MethodRun("nudge-n", "succeeded", False, "j1", 2.0, report(BETTER), {"ndcg@10": 0.4}),
        MethodRun("full", "succeeded", True, "j2", 60.0, report(BASE), {"ndcg@10": 0.3}),
        MethodRun("lora", "cancelled", True, "j3", None, error=None),
    ]
    return build_report(
        runs, queries=QUERIES, dataset="scifact", base_model="minilm", forgetting_dataset="cmrc"
    )


def test_changes_are_in_points_against_the_base(compared: CompareReport) -> None:
    nudge = compared.row("nudge-n")
    mean = sum(BETTER.values()) / len(BETTER)
    assert nudge.test["ndcg@10"] == pytest.approx(mean)
    assert nudge.change["ndcg@10"] == pytest.approx(100 * (mean - 0.5))
    assert compared.row("base").change == {"ndcg@10": 0.0, "recall@10": 0.0, "mrr@10": 0.0}
    assert compared.row("full").forgetting_change == {"ndcg@10": pytest.approx(-10.0)}
    assert compared.row("nudge-n").forgetting_change == {"ndcg@10": 0.0}
    assert not compared.row("nudge-n").reencode and compared.row("full").reencode


def test_wins_losses_and_the_biggest_changes_with_their_texts(compared: CompareReport) -> None:
    nudge = compared.row("nudge-n")
    assert (nudge.wins, nudge.losses, nudge.ties) == (11, 1, 0)
    assert len(nudge.top_gains) == 10  # capped
    assert [g.query_id for g in nudge.top_gains[:2]] == ["q10", "q9"]
    assert nudge.top_gains[0].text == "claim number 10"
    assert nudge.top_gains[0].change == pytest.approx(0.44)
    (loss,) = nudge.top_losses
    assert (loss.query_id, loss.rank_before, loss.rank_after) == ("q11", 2, 4)
    full = compared.row("full")
    assert (full.wins, full.losses, full.ties) == (0, 0, 12)


def test_unfinished_methods_are_listed_without_figures(compared: CompareReport) -> None:
    lora = compared.row("lora")
    assert lora.status == "cancelled" and lora.test == {} and lora.wins == 0


def test_best_method_and_its_margin(compared: CompareReport) -> None:
    mean = sum(BETTER.values()) / len(BETTER)
    assert compared.best == "nudge-n"
    assert compared.best_margin == pytest.approx(100 * (mean - 0.5))


def test_json_round_trip_and_markdown(compared: CompareReport) -> None:
    data = json.loads(json.dumps(compared.to_dict()))
    assert CompareReport.from_dict(data) == compared
    md = to_markdown(compared)
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| method"))
    assert "nDCG@10 cmrc" in header and "re-encode corpus" in header
    row = next(line for line in lines if line.startswith("| nudge-n "))
    assert "| no | 11 / 1 |" in row and "| 2 s |" in row
    assert any(line.startswith("| lora (cancelled) ") for line in lines)
    assert "claim number 10 (`q10`)" in md and "2 → 4" in md
    assert "Best: **nudge-n**" in md


def test_markdown_names_the_precision_of_half_precision_rows(compared: CompareReport) -> None:
    assert "Precision" not in to_markdown(compared)  # every row fp32, as by default
    rows = [replace(r, precision="fp16") if r.method == "base" else r for r in compared.rows]
    md = to_markdown(replace(compared, rows=rows))
    assert "Precision of the test vectors: base fp16, nudge-n fp32" in md


def test_the_base_run_must_have_test_results() -> None:
    with pytest.raises(ValueError):
        build_report([MethodRun("base", "failed", False)], queries={}, dataset="d", base_model="m")


def test_the_compare_command_runs_the_job_on_the_local_store(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    out = run_cli(
        "compare",
        "--dataset",
        str(sample_dir),
        "--model",
        str(tiny_model_dir),
        "--methods",
        "base,nudge-n,nudge-m",
        "--output",
        str(tmp_path / "report"),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    data = json.loads((tmp_path / "report" / "report.json").read_text())
    assert [r["method"] for r in data["rows"]] == ["base", "nudge-n", "nudge-m"]
    assert all(r["status"] == "succeeded" for r in data["rows"])
    assert "| nudge-n |" in out.stdout
    assert (tmp_path / "report" / "report.md").read_text() == out.stdout
    assert "compare" in out.stderr and "succeeded" in out.stderr  # job and children states

"""The reranker commands on rerank rows ``{query, positive: [...], negative: [...]}``."""

from __future__ import annotations

import json
from pathlib import Path

from core.datasets.io import load_dataset
from tests.cli.test_cli import run_cli


def rerank_rows(sample_dir: Path, path: Path, queries: int = 16) -> Path:
    """T2Reranking / open-retrievals rows built from the sample: 2 negatives per query."""
    ds = load_dataset(sample_dir)
    docs = list(ds.corpus.values())
    rows = []
    for n, (qid, judged) in enumerate(list(ds.qrels["train"].items())[:queries]):
        negatives = [docs[(7 * n + k) % len(docs)].full_text for k in (1, 2)]
        positives = [ds.corpus[d].full_text for d in judged]
        rows.append({"query": ds.queries[qid].text, "positive": positives, "negative": negatives})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), "utf-8")
    return path


def test_rerank_finetune_then_rerank_eval(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    rows = rerank_rows(sample_dir, tmp_path / "rerank.jsonl")
    out = run_cli(
        "rerank-finetune", "-d", str(rows), "-o", str(tmp_path / "rr"), "-m", str(tiny_model_dir),
        "--max-seq-length", "64", "--batch-size", "8", "--candidates", "5", "--lr", "1e-3",
        "--num-negatives", "2", "--val-fraction", "0.25",
        cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "reranked after" in out.stdout and "fused" in out.stdout
    assert (tmp_path / "rr" / "model.safetensors").is_file()
    own = run_cli(
        "rerank-eval", "-d", str(rows), "-r", str(tmp_path / "rr"), "--split", "train",
        "--own-candidates", "-o", str(tmp_path / "own.json"),
        cwd=tmp_path,
    )  # fmt: skip
    assert own.returncode == 0, own.stderr
    metrics = json.loads((tmp_path / "own.json").read_text())["metrics"]
    assert set(metrics) == {"map", "mrr@10", "ndcg@10"} and 0 < metrics["map"] <= 1
    bad = run_cli("rerank-eval", "-d", str(rows), "-r", "no-such-reranker", cwd=tmp_path)
    assert bad.returncode == 2 and "model_not_found" in bad.stdout + bad.stderr

"""The `embedtune` command: tables on success, located errors and exit code 2 on bad data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-c", "from cli.main import main; main()"]
REPO = Path(__file__).resolve().parents[2]  # this checkout's code, whatever is installed


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMBEDTUNE_DATA_DIR": str(cwd / "var"), "COLUMNS": "160"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_help_lists_the_commands(tmp_path: Path) -> None:
    out = run_cli("--help", cwd=tmp_path)
    assert out.returncode == 0
    for command in ("validate", "convert", "split", "model", "eval"):
        assert command in out.stdout


def test_eval_prints_a_table_and_writes_the_report(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    report = tmp_path / "report.json"
    out = run_cli(
        "eval",
        "--dataset",
        str(sample_dir),
        "--model",
        str(tiny_model_dir),
        "--split",
        "test",
        "--output",
        str(report),
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "nDCG" in out.stdout and "@10" in out.stdout
    data = json.loads(report.read_text())
    assert data["num_queries"] == 300 and 0 < data["metrics"]["ndcg@10"] < 1
    assert f"{data['metrics']['ndcg@10']:.4f}" in out.stdout
    assert len(data["per_query"]) == 300
    # The corpus embeddings were cached under the data dir: a second run encodes nothing.
    again = run_cli(
        "eval",
        "--dataset",
        str(sample_dir),
        "--model",
        str(tiny_model_dir),
        "--output",
        str(report),
        cwd=tmp_path,
    )
    assert "corpus cache hits: 2000" in again.stdout


def test_bad_dataset_names_file_line_and_field(sample_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(sample_dir, broken)
    qrels = broken / "qrels" / "test.tsv"
    qrels.write_text(qrels.read_text() + "1\tno-such-doc\t1\n")
    out = run_cli("validate", str(broken), cwd=tmp_path)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "unknown_doc_id" in out.stderr and "qrels/test.tsv" in out.stderr
    assert "no-such-doc" in out.stderr


def test_convert_then_validate(sample_dir: Path, tmp_path: Path) -> None:
    target = tmp_path / "sample.json"
    out = run_cli(
        "convert", str(sample_dir), str(target), "--to", "rag-json", "--split", "test", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(target.read_text())
    assert len(data["relevant_docs"]) == 300
    assert run_cli("validate", str(target), cwd=tmp_path).returncode == 0


def test_projects_and_keys_in_them(tmp_path: Path) -> None:
    assert run_cli("migrate", cwd=tmp_path).returncode == 0
    made = run_cli("projects", "create", "acme", cwd=tmp_path)
    assert made.returncode == 0 and made.stdout.startswith("prj_")
    assert run_cli("projects", "create", "acme", cwd=tmp_path).returncode == 2
    listed = run_cli("projects", "list", cwd=tmp_path).stdout
    assert "default" in listed and "acme" in listed
    key = run_cli("keys", "create", "--project", "acme", "--name", "ci", cwd=tmp_path)
    assert key.returncode == 0 and key.stdout.startswith("et_")
    assert run_cli("keys", "create", cwd=tmp_path).stdout.startswith("et_")  # default project
    keys = run_cli("keys", "list", cwd=tmp_path).stdout
    assert made.stdout.strip() in keys and "prj_default" in keys
    missing = run_cli("keys", "create", "--project", "nope", cwd=tmp_path)
    assert missing.returncode == 2 and "project_not_found" in missing.stderr

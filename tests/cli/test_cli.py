"""The `embedtune` command: tables on success, located errors and exit code 2 on bad data."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-c", "from cli.main import main; main()"]
REPO = Path(__file__).resolve().parents[2]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """The command of this checkout (not of whichever checkout is installed)."""
    env = {
        **os.environ,
        "EMBEDTUNE_DATA_DIR": str(cwd / "var"),
        "COLUMNS": "160",
        "PYTHONPATH": str(REPO),
    }
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
    assert data["truncated"]["documents"] > 0 and "truncated at 64 tokens" in out.stdout
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


def test_the_worker_of_up_dies_with_its_parent_even_when_killed(tmp_path: Path) -> None:
    import signal
    import time

    pid_file = tmp_path / "child.pid"
    parent = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import os, subprocess, sys, time; from cli.platform import die_with_parent; "
            "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'], "
            "preexec_fn=die_with_parent(os.getpid())); "
            f"open({str(pid_file)!r}, 'w').write(str(child.pid)); time.sleep(60)",
        ],
        cwd=REPO,
    )
    deadline = time.monotonic() + 30
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.1)
    child = int(pid_file.read_text())
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)  # still there (or a zombie awaiting init)
            if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
                break
        except (ProcessLookupError, FileNotFoundError):
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child outlived its killed parent")


def test_validate_maps_columns_and_prints_warnings(tmp_path: Path) -> None:
    path = tmp_path / "qa.csv"
    path.write_text("ask,reply,origin\nq1,a1,web\nq2,,web\n", encoding="utf-8")
    refused = run_cli("validate", str(path), "--columns", "query=ask,positive=reply", cwd=tmp_path)
    assert refused.returncode == 2 and "--drop-empty" in refused.stderr
    out = run_cli(
        "validate", str(path), "--columns", "query=ask,positive=reply", "--drop-empty", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert "unused_column" in out.stderr and "'origin' (2 records)" in out.stderr
    assert "dropped 1 records with an empty text (lines 3)" in out.stderr


def test_eval_refuses_a_split_the_dataset_does_not_have(tmp_path: Path) -> None:
    data = {
        "queries": {"q1": "one", "q2": "two"},
        "corpus": {"d1": "doc one", "d2": "doc two"},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"]},
        "queries_split": {"train": ["q1"], "val": ["q2"]},
    }
    path = tmp_path / "rag.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    out = run_cli(
        "eval", "--dataset", str(path), "--model", "unused", "--split", "test", cwd=tmp_path
    )
    assert out.returncode == 2
    assert "no split 'test' (splits: train, val)" in out.stderr


def test_the_finetune_command_has_an_option_for_every_spec_field(tmp_path: Path) -> None:
    from dataclasses import fields

    from core.training.spec import FinetuneSpec

    shown = run_cli("finetune", "--help", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    for field in fields(FinetuneSpec):
        if field.name not in ("method", "base_model"):
            assert f"--{field.name.replace('_', '-')}" in shown.stdout, field.name
    assert "mnrl | cached_mnrl | cosent" in shown.stdout and "--lr" in shown.stdout


def test_ingest_then_synthesize_a_folder_of_documents(tmp_path: Path, tiny_model_dir: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(12):
        (docs / f"note{i}.md").write_text(
            f"# Note {i} on topic {i % 3}\n\nThe finding of note {i} is number {i * 7}. "
            f"It was measured twice in study {i}.",
            "utf-8",
        )
    (docs / "bad.bin").write_bytes(b"\x00\x01")
    out = run_cli("ingest", str(docs), "-o", "corpus", "-m", str(tiny_model_dir), cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "skipped bad.bin: [unsupported_type]" in " ".join(out.stderr.split())
    report = json.loads((tmp_path / "corpus" / "ingest_report.json").read_text())
    assert report["documents"] == 12 and report["chunks"] == 12
    synth = run_cli(
        "synthesize", "-d", "corpus", "-o", "synth", "-m", str(tiny_model_dir),
        "--generators", "title,inverse_cloze", "--round-trip-k", "0",
        "--val-fraction", "0.25", "--test-fraction", "0.25",
        cwd=tmp_path,
    )  # fmt: skip
    assert synth.returncode == 0, synth.stderr
    made = json.loads((tmp_path / "synth" / "synthesis_report.json").read_text())
    assert made["candidates"] == {"title": 12, "inverse_cloze": 12}
    assert (tmp_path / "synth" / "qrels" / "train.tsv").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.txt").write_text("")
    nothing = run_cli("ingest", str(empty), "-o", "c2", "-m", str(tiny_model_dir), cwd=tmp_path)
    assert nothing.returncode == 2

"""`make demo`: start EmbedTune on this machine and drive its API through the main workflow.

Uploads the shipped SciFact sample, evaluates the packaged all-MiniLM-L6-v2 (eval), mines hard
negatives (mine), fine-tunes on them (finetune), evaluates the tuned model (eval), compares the
base with NUDGE-N and NUDGE-M (compare), and prints the table. Everything goes through HTTP,
as a user's scripts would.

    python scripts/demo.py [--method full|lora|adapter] [--epochs 1] [--keep-running]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "scifact-sample"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


SERVICE_VARIABLES = (
    "DATABASE_URL",
    "EMBEDTUNE_DATABASE_URL",
    "CELERY_BROKER_URL",
    "EMBEDTUNE_BROKER_URL",
)


def service_free_env(data_dir: str) -> dict[str, str]:
    """This environment with every database and broker URL emptied (which also overrides a
    ``.env`` file): the demo always runs on SQLite and the filesystem transport under
    ``data_dir``, whatever the shell or a compose ``.env`` has set."""
    return {
        **os.environ,
        **dict.fromkeys(SERVICE_VARIABLES, ""),
        "EMBEDTUNE_ENVIRONMENT": "development",
        "EMBEDTUNE_DATA_DIR": data_dir,
        "HF_HUB_OFFLINE": "1",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--method", default="full", choices=("full", "lora", "adapter"))
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--data-dir", default=str(ROOT / "var" / "demo"))
    parser.add_argument("--keep-running", action="store_true")
    args = parser.parse_args()

    env = service_free_env(args.data_dir)
    print(
        f"service-free: SQLite at {args.data_dir}/embedtune.db, kombu's filesystem broker under "
        f"{args.data_dir}/broker; no Postgres, Redis or Docker"
    )
    cli = [sys.executable, "-m", "cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True)
    key = subprocess.run(
        [*cli, "keys", "create", "--role", "admin", "--name", "demo"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [*cli, "up", "--port", str(args.port)], env=env, cwd=ROOT, start_new_session=True
    )
    try:
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{args.port}",
            timeout=60,
            headers={"Authorization": f"Bearer {key}"},
        )
        wait_ready(client)
        run_workflow(client, args.method, args.epochs)
        if args.keep_running:
            print(f"API at http://127.0.0.1:{args.port}/docs (key {key}) — Ctrl-C to stop")
            server.wait()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def wait_ready(client: httpx.Client, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit("the API did not become ready")


def run_workflow(client: httpx.Client, method: str, epochs: float) -> None:
    files = [
        ("files", (str(p.relative_to(SAMPLE)), p.read_bytes()))
        for p in sorted(SAMPLE.rglob("*"))
        if p.suffix in (".jsonl", ".tsv")
    ]
    dataset = check(client.post("/v1/datasets", files=files, data={"name": "scifact-sample"}))
    print(f"uploaded {dataset['id']}: {dataset['stats']['documents']} documents")
    before = run(client, "eval", {"dataset_id": dataset["id"], "model": MODEL, "split": "test"})
    mined = run(client, "mine", {"dataset_id": dataset["id"], "model": MODEL, "split": "train"})
    tuned = run(
        client,
        "finetune",
        {
            "dataset_id": mined["dataset_id"],
            "base_model": MODEL,
            "method": method,
            "params": {"epochs": epochs},
        },
    )
    after = run(
        client, "eval", {"dataset_id": dataset["id"], "model": tuned["model_id"], "split": "test"}
    )
    # NUDGE tunes the stored corpus vectors, not the model: seconds on the cached embeddings.
    nudged = run(
        client,
        "compare",
        {
            "dataset_id": dataset["id"],
            "base_model": MODEL,
            "methods": ["base", "nudge-n", "nudge-m"],
        },
    )
    rows = {r["method"]: r["test"] for r in nudged["report"]["rows"]}
    head = ("nDCG@10", 10), ("Recall@10", 11), ("MRR@10", 9), ("change", 8)
    print("\n" + f"{'SciFact sample, test split':<28}" + "".join(f"{h:>{w}}" for h, w in head))
    for name, m in (
        (MODEL.split("/")[-1], before["metrics"]),
        (f"{method} fine-tune", after["metrics"]),
        ("NUDGE-N (corpus vectors)", rows["nudge-n"]),
        ("NUDGE-M (corpus vectors)", rows["nudge-m"]),
    ):
        gain = (m["ndcg@10"] - before["metrics"]["ndcg@10"]) * 100
        print(
            f"{name:<28}{m['ndcg@10']:>10.4f}{m['recall@10']:>11.4f}{m['mrr@10']:>9.4f}{gain:>+8.1f}"
        )


def run(client: httpx.Client, type: str, spec: dict) -> dict:
    job = check(client.post("/v1/jobs", json={"type": type, "spec": spec}))
    while job["status"] in ("queued", "running"):
        time.sleep(1)
        job = check(client.get(f"/v1/jobs/{job['id']}"))
        print(
            f"\r{type:<9}{job['status']:<10}{job['progress']:6.1f}%  {job['stage'] or '':<16}",
            end="",
            flush=True,
        )
    print()
    if job["status"] != "succeeded":
        raise SystemExit(f"{type} job {job['id']} {job['status']}: {job['error']}")
    return job["result"]


def check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


if __name__ == "__main__":
    main()

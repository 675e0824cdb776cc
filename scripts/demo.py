"""`make demo`: start EmbedTune on this machine and drive its API through the main workflow.

Uploads the shipped SciFact sample, evaluates the packaged all-MiniLM-L6-v2 (eval), mines hard
negatives (mine), fine-tunes on them (finetune), evaluates the tuned model (eval), compares the
base with NUDGE-N and NUDGE-M (compare), and prints the table. Everything goes through HTTP,
as a user's scripts would.

    python scripts/demo.py [--method full|lora|adapter] [--epochs 1] [--keep-running]

The services' logs go to files under the data dir (``var/demo/logs``); the terminal shows one
line per job, the table, and where the dashboard is. ``--keep-running`` leaves the API (and
its dashboard) up and prints the API key to paste into it.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
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

    # Stop cleanly on SIGTERM too, and on SIGINT even when started in the background.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if port_taken(args.port):
        raise SystemExit(f"port {args.port} is in use: stop what runs there or pass --port")
    data_dir = Path(args.data_dir).resolve()
    logs = data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = {
        **service_free_env(str(data_dir)),
        "EMBEDTUNE_WORKER_METRICS_PORT": str(args.port + 1),
    }
    print(
        f"service-free: SQLite at {data_dir}/embedtune.db, kombu's filesystem broker under "
        f"{data_dir}/broker; no Postgres, Redis or Docker"
    )
    cli = [sys.executable, "-m", "cli"]
    quiet = {"env": env, "cwd": ROOT, "check": True, "capture_output": True, "text": True}
    subprocess.run([*cli, "migrate"], **quiet)
    key = subprocess.run(
        [*cli, "keys", "create", "--role", "admin", "--name", "demo"], **quiet
    ).stdout.strip()
    processes = [
        start([*cli, "api", "--port", str(args.port)], logs / "api.log", env),
        start([*cli, "worker"], logs / "worker.log", env),
        start([*cli, "reconciler"], logs / "reconciler.log", env),
    ]
    url = f"http://127.0.0.1:{args.port}"
    print(f"EmbedTune on {url}: API, worker and reconciler logs in {logs}/")
    try:
        client = httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {key}"})
        wait_ready(client)
        run_workflow(client, args.method, args.epochs)
        print(f"\ndashboard: {url}/ui/   metrics: {url}/metrics (worker: port {args.port + 1})")
        if args.keep_running:
            print(f"API key (paste it into the dashboard): {key}\nCtrl-C stops the demo.")
            processes[0].wait()
    except KeyboardInterrupt:
        pass
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=60)


def port_taken(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen:
    """A service process in its own session, its output (access log included) in ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


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
    print(
        f"uploaded {dataset['id']}: {dataset['stats']['documents']} documents, "
        f"{dataset['stats']['queries']} queries"
    )
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
            # SciFact has 2 test claims whose text a train claim has: not trained on
            "data_checks": "drop",
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
    """Submit a job and wait for it: one line per job, redrawn in place on a terminal."""
    job = check(client.post("/v1/jobs", json={"type": type, "spec": spec}))
    started = time.monotonic()
    live = sys.stdout.isatty()
    while job["status"] in ("queued", "running"):
        time.sleep(1)
        job = check(client.get(f"/v1/jobs/{job['id']}"))
        if live:
            print(f"\r{progress_line(type, job, started)}", end="", flush=True)
    print(("\r" if live else "") + progress_line(type, job, started))
    if job["status"] != "succeeded":
        raise SystemExit(f"{type} job {job['id']} {job['status']}: {job['error']}")
    return job["result"]


def progress_line(type: str, job: dict, started: float) -> str:
    stage = job["stage"] or ""
    if job["total_steps"] and job["status"] == "running":
        stage += f" {job['current_step']}/{job['total_steps']}"
    eta = job["eta_seconds"]
    tail = f"ETA {eta:4.0f} s" if eta is not None and job["status"] == "running" else ""
    took = time.monotonic() - started
    return (
        f"{type:<9}{job['id']:<22}{job['status']:<10}{job['progress']:6.1f}%  "
        f"{stage[:30]:<30} {took:5.0f} s {tail}"
    ).rstrip()


def check(response: httpx.Response) -> dict:
    if response.status_code >= 400:
        raise SystemExit(f"{response.request.method} {response.request.url}: {response.text}")
    return response.json()


if __name__ == "__main__":
    main()

"""Bounded mixed load on loopback: embedding requests and job submissions for N seconds.

Starts the API (uvicorn, its own data dir; SQLite + filesystem broker unless --database-url /
--broker-url say otherwise), creates a key, uploads a small dataset, then runs concurrent
clients: most send embedding requests, some submit eval jobs. Prints requests served, error
rate and latency percentiles per kind, then checks that every job answered 202 is in the
database.

    python bench/load.py [--seconds 60] [--concurrency 16] [--job-share 0.1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
SAMPLE = ROOT / "data" / "scifact-sample"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--job-share", type=float, default=0.1)
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--database-url")
    parser.add_argument("--broker-url")
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="embedtune-load-"))
    env = {
        **os.environ,
        "EMBEDTUNE_DATA_DIR": str(data),
        "HF_HUB_OFFLINE": "1",
        "EMBEDTUNE_RATE_LIMIT_PER_MINUTE": "1000000",
        "EMBEDTUNE_RATE_LIMIT_BURST": "100000",
    }
    if args.database_url:
        env["EMBEDTUNE_DATABASE_URL"] = args.database_url
    if args.broker_url:
        env["EMBEDTUNE_BROKER_URL"] = args.broker_url
    cli = [sys.executable, "-m", "cli"]
    subprocess.run([*cli, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)
    key = subprocess.run(
        [*cli, "keys", "create", "--role", "admin"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    server = subprocess.Popen(
        [*cli, "api", "--port", str(args.port)],
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        asyncio.run(run(args, key))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


async def run(args: argparse.Namespace, key: str) -> None:
    base = f"http://127.0.0.1:{args.port}"
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:
        await wait_ready(client)
        dataset = await upload(client)
        texts = [
            json.loads(x)["text"] for x in (SAMPLE / "queries.jsonl").read_text().split("\n") if x
        ]
        await client.post("/v1/embeddings", json={"model": MODEL, "input": "warm up"})
        stats: dict[str, list] = {"embed": [], "job": []}
        accepted: list[str] = []
        deadline = time.monotonic() + args.seconds
        rng = random.Random(0)

        async def user() -> None:
            while time.monotonic() < deadline:
                kind = "job" if rng.random() < args.job_share else "embed"
                started = time.perf_counter()
                if kind == "job":
                    response = await client.post(
                        "/v1/jobs",
                        json={
                            "type": "eval",
                            "spec": {"dataset_id": dataset, "model": MODEL, "split": "test"},
                        },
                    )
                    if response.status_code == 202:
                        accepted.append(response.json()["id"])
                else:
                    response = await client.post(
                        "/v1/embeddings",
                        json={
                            "model": MODEL,
                            "input": rng.sample(texts, rng.choice((1, 1, 4, 16))),
                        },
                    )
                stats[kind].append((time.perf_counter() - started, response.status_code))

        await asyncio.gather(*(user() for _ in range(args.concurrency)))
        report(stats, args.seconds)
        missing = [j for j in accepted if (await client.get(f"/v1/jobs/{j}")).status_code != 200]
        print(f"accepted jobs: {len(accepted)}; missing from the database: {len(missing)}")


def report(stats: dict[str, list], seconds: float) -> None:
    print(
        f"{'kind':<8}{'requests':>10}{'req/s':>9}{'errors':>8}{'err %':>8}"
        f"{'p50 ms':>9}{'p99 ms':>9}"
    )
    for kind, rows in stats.items():
        if not rows:
            continue
        latencies = sorted(t for t, _ in rows)
        errors = sum(1 for _, code in rows if code >= 400)
        p50 = latencies[len(latencies) // 2] * 1000
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000
        print(
            f"{kind:<8}{len(rows):>10}{len(rows) / seconds:>9.1f}{errors:>8}"
            f"{100 * errors / len(rows):>8.2f}{p50:>9.1f}{p99:>9.1f}"
        )


async def wait_ready(client: httpx.AsyncClient) -> None:
    for _ in range(240):
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    raise SystemExit("the API did not become ready")


async def upload(client: httpx.AsyncClient) -> str:
    files = [
        ("files", (str(p.relative_to(SAMPLE)), p.read_bytes()))
        for p in sorted(SAMPLE.rglob("*"))
        if p.suffix in (".jsonl", ".tsv")
    ]
    response = await client.post("/v1/datasets", files=files)
    response.raise_for_status()
    return response.json()["id"]


if __name__ == "__main__":
    main()

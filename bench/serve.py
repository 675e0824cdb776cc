"""Benchmark /v1/embeddings against in-process encoding and infinity-emb, on this machine.

Loads, through HTTP on 127.0.0.1 with keep-alive connections: single short texts (SciFact
queries) at concurrency 1, 8 and 32, and requests of 32 passages (SciFact abstracts, first 80
words). Each load runs for ``--seconds`` against our API (uvicorn, SQLite, an inference key)
and against infinity-emb serving the same local model directory; in-process
``SentenceTransformer.encode`` of the same texts (batch 32) is measured in the same run.

    python bench/serve.py [--seconds 10] [--infinity /tmp/infinity-venv/bin/infinity_emb]

With ``--rerank DIR`` it measures /v1/rerank instead: pairs/s for 1 query x 100 passages at
concurrency 1 and 8, ours and infinity-emb's serving the same cross-encoder directory.

With ``--int8`` our API also serves the model opted in to int8 (``EMBEDTUNE_SERVE_INT8_MODELS``)
after measuring it as the quantize job does (cosine to fp32 on corpus documents, nDCG@10 change
on the packaged SciFact sample's test split); both of our servers run in the same run.

With ``--stall`` it measures only short-query latency (c=1) alone and while a second connection
sends 8 MB inputs back to back: refused (413) and with ``"truncate": true``.

infinity-emb lives in its own venv, with the CPU torch wheel installed first:
    python -m venv /tmp/infinity-venv && /tmp/infinity-venv/bin/pip install torch==2.13.0
    /tmp/infinity-venv/bin/pip install 'infinity-emb[server,torch]==0.0.78'
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from core.serving.quantize import Int8Quality

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "scifact-sample"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
TARGETS = "targets: single c=32 >= 2.0x infinity; 32-text >= 0.85x in-process; c=1 p50 < 15 ms"


@dataclass(frozen=True)
class Load:
    name: str
    texts_per_request: int
    concurrency: int


@dataclass(frozen=True)
class Result:
    texts_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int


@dataclass(frozen=True)
class Server:
    url_path: bytes
    model: str
    headers: bytes


def texts(n: int) -> tuple[list[str], list[str]]:
    """``n`` short queries and ``n`` passages of at most 80 words (at most 230 tokens)."""

    def read(name: str) -> list[dict]:
        lines = (SAMPLE / name).read_text("utf-8").splitlines()[:n]
        return [json.loads(x) for x in lines]

    queries = [q["text"] for q in read("queries.jsonl")]
    passages = [" ".join(f"{d['title']} {d['text']}".split()[:80]) for d in read("corpus.jsonl")]
    return queries, passages


# load generator ----------------------------------------------------------------------------


async def _connection(
    port: int,
    server: Server,
    bodies: list[bytes],
    counter: Iterator[int],
    stop: float,
    ok: bytes = b"HTTP/1.1 200",
) -> list[float]:
    """One keep-alive connection sending requests back to back; their latencies in seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n" % (
        server.url_path
    )
    latencies = []
    try:
        while time.perf_counter() < stop:
            body = bodies[next(counter) % len(bodies)]
            started = time.perf_counter()
            writer.write(head + server.headers + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?i)\r\ncontent-length: *(\d+)", answer)
            payload = await reader.readexactly(int(length.group(1)) if length else 0)
            if not answer.startswith(ok):
                raise RuntimeError(f"{answer.splitlines()[0]!r}: {payload[:300]!r}")
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return latencies


def run_load(port: int, server: Server, load: Load, pool: list[str], seconds: float) -> Result:
    n = load.texts_per_request
    bodies = [
        json.dumps(
            {
                "model": server.model,
                "input": pool[i : i + n] if n > 1 else pool[i],
                "encoding_format": "base64",
            }
        ).encode()
        for i in range(0, len(pool) - n + 1, n if n > 1 else 1)
    ]
    return run_bodies(port, server, bodies, load, seconds)


def run_bodies(
    port: int, server: Server, bodies: list[bytes], load: Load, seconds: float
) -> Result:
    """``load.concurrency`` connections sending ``bodies`` in turn for ``seconds``; a request
    counts ``load.texts_per_request`` texts (pairs, for rerank requests)."""
    n = load.texts_per_request

    async def main() -> list[list[float]]:
        counter = itertools.count()
        stop = time.perf_counter() + seconds
        return await asyncio.gather(
            *(_connection(port, server, bodies, counter, stop) for _ in range(load.concurrency))
        )

    started = time.perf_counter()
    latencies = np.array([x for conn in asyncio.run(main()) for x in conn]) * 1000
    elapsed = time.perf_counter() - started
    return Result(
        len(latencies) * n / elapsed,
        float(np.percentile(latencies, 50)),
        float(np.percentile(latencies, 99)),
        len(latencies),
    )


def stall(port: int, server: Server, queries: list[str], seconds: float) -> dict[str, Result]:
    """Latency of single short queries at c=1: alone, then while another connection sends an
    8 MB input back to back, refused (413) or cut (``truncate``)."""
    short = [json.dumps({"model": server.model, "input": q}).encode() for q in queries]
    huge = "protein folding " * (1 << 19)  # 8 MB
    big = {
        "alone": None,
        "8 MB input, 413": (json.dumps({"model": server.model, "input": huge}), b"HTTP/1.1 413"),
        "8 MB input, truncate": (
            json.dumps({"model": server.model, "input": huge, "truncate": True}),
            b"HTTP/1.1 200",
        ),
    }

    async def both(other: tuple[str, bytes] | None) -> list[float]:
        stop = time.perf_counter() + seconds
        tasks = [_connection(port, server, short, itertools.count(), stop)]
        if other:
            body, ok = other
            tasks.append(_connection(port, server, [body.encode()], itertools.count(), stop, ok))
        return (await asyncio.gather(*tasks))[0]

    out = {}
    for name, other in big.items():
        latencies = np.array(asyncio.run(both(other))) * 1000
        out[name] = Result(
            len(latencies) / seconds,
            float(np.percentile(latencies, 50)),
            float(np.percentile(latencies, 99)),
            len(latencies),
        )
        print(f"  short queries, {name}: {out[name]} (max {latencies.max():.0f} ms)", flush=True)
    return out


# servers -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}; see its log")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} not ready after {timeout}s")


@contextmanager
def running(argv: list[str], env: dict[str, str], ready: str, log: Path) -> Iterator[None]:
    with log.open("w") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        wait_ready(ready, process)
        yield
    finally:
        process.terminate()
        process.wait(timeout=60)


def measured_int8(data_dir: Path) -> Int8Quality:
    """The model's int8 export and its quality figures, stored where a server on ``data_dir``
    reads them (the quantize job's measurement, on the packaged SciFact sample)."""
    from core.datasets.io import load_dataset
    from core.models.embedder import load_embedder
    from core.serving.quantize import measure_int8, save_quality
    from core.serving.runtime import with_runtime
    from core.settings import Settings

    onnx_dir = Settings(data_dir=data_dir).onnx_dir
    fp32 = load_embedder(MODEL)
    quality = measure_int8(load_dataset(SAMPLE), fp32, with_runtime(fp32, onnx_dir, "int8"), "test")
    save_quality(onnx_dir, quality)
    return quality


@contextmanager
def embedtune(
    port: int, workdir: Path, reranker: Path | None = None, *, int8: bool = False
) -> Iterator[Server]:
    """Our API: SQLite under ``workdir``, migrated, with an inference key and no rate limit;
    with ``reranker`` that directory is served as ``reranker`` on /v1/rerank; with ``int8`` the
    model is served at int8 (opted in, measured first)."""
    from core.services.keys import create_key
    from core.store.db import make_engine, make_session_factory, transaction, upgrade

    (workdir / "var").mkdir(parents=True)
    if reranker is not None:
        shutil.copytree(reranker, workdir / "var" / "models" / "reranker")
    db_url = f"sqlite:///{workdir / 'var' / 'embedtune.db'}"
    env = {
        **os.environ,
        "EMBEDTUNE_DATA_DIR": str(workdir / "var"),
        "EMBEDTUNE_DATABASE_URL": db_url,
        "EMBEDTUNE_RATE_LIMIT_PER_MINUTE": "1e9",
        "EMBEDTUNE_RATE_LIMIT_BURST": "1000000000",
        "HF_HUB_OFFLINE": "1",
    }
    if int8:
        env["EMBEDTUNE_SERVE_INT8_MODELS"] = json.dumps([MODEL])
        print(f"int8: {measured_int8(workdir / 'var').describe()}", flush=True)
    upgrade(db_url)
    with transaction(make_session_factory(make_engine(db_url))) as session:
        key = create_key(session, name="bench", role="inference")
    argv = [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    with running(argv, env, f"http://127.0.0.1:{port}/healthz", workdir / "embedtune.log"):
        auth = b"Authorization: Bearer %s\r\n" % key.encode()
        if reranker is not None:
            yield Server(b"/v1/rerank", "reranker", auth)
        else:
            yield Server(b"/v1/embeddings", MODEL, auth)


@contextmanager
def infinity(
    binary: str, port: int, model_dir: Path, workdir: Path, *, rerank: bool = False
) -> Iterator[Server]:
    argv = [binary, "v2", "--model-id", str(model_dir), "--served-model-name", "minilm"]
    argv += ["--engine", "torch", "--device", "cpu", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--url-prefix", "/v1", "--log-level", "warning", "--api-key", "bench"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0"}
    with running(argv, env, f"http://127.0.0.1:{port}/health", workdir / "infinity.log"):
        path = b"/v1/rerank" if rerank else b"/v1/embeddings"
        yield Server(path, "minilm", b"Authorization: Bearer bench\r\n")


RERANK_DOCS = 100
RERANK_LOADS = [Load(f"1 query x {RERANK_DOCS} docs, c={c}", RERANK_DOCS, c) for c in (1, 8)]


def rerank_bodies(model: str, queries: list[str], passages: list[str]) -> list[bytes]:
    """One query and ``RERANK_DOCS`` passages per request: the Cohere/Jina/infinity schema."""
    return [
        json.dumps(
            {"model": model, "query": q, "documents": passages[i : i + RERANK_DOCS]}
        ).encode()
        for i, q in enumerate(queries[:32])
    ]


def rerank_bench(reranker: Path, args: argparse.Namespace) -> None:
    """Pairs/s of /v1/rerank (ours, the reranker copied under the models directory) and of
    infinity-emb's /v1/rerank serving the same cross-encoder directory, in the same run."""
    queries, passages = texts(args.texts)
    passages = passages * (1 + RERANK_DOCS // max(len(passages), 1))
    rows = ["| load | ours pairs/s | p50 ms | infinity pairs/s | p50 ms | ours/infinity |"]
    rows.append("|---|---:|---:|---:|---:|---:|")
    results: dict[str, dict[Load, Result]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        with embedtune(port, workdir, reranker) as server:
            bodies = rerank_bodies(server.model, queries, passages)
            run_bodies(port, server, bodies, Load("warm-up", RERANK_DOCS, 2), 3)
            results["ours"] = {
                load: run_bodies(port, server, bodies, load, args.seconds) for load in RERANK_LOADS
            }
            print("embedtune:", results["ours"], flush=True)
        if Path(args.infinity).exists():
            port = free_port()
            with infinity(args.infinity, port, reranker, workdir, rerank=True) as server:
                bodies = rerank_bodies(server.model, queries, passages)
                run_bodies(port, server, bodies, Load("warm-up", RERANK_DOCS, 2), 3)
                results["infinity"] = {
                    load: run_bodies(port, server, bodies, load, args.seconds)
                    for load in RERANK_LOADS
                }
                print("infinity-emb:", results["infinity"], flush=True)
        else:
            print(f"infinity-emb not found at {args.infinity}; see this file's docstring")
    for load in RERANK_LOADS:
        o, i = results["ours"][load], results.get("infinity", {}).get(load)
        theirs = (
            f"{i.texts_per_s:.0f} | {i.p50_ms:.0f} | {o.texts_per_s / i.texts_per_s:.2f}x"
            if i
            else "- | - | -"
        )
        rows.append(f"| {load.name} | {o.texts_per_s:.0f} | {o.p50_ms:.0f} | {theirs} |")
    print("\n".join(rows))


def measure(server: Server, port: int, loads: list[Load], pools: dict, seconds: float) -> dict:
    run_load(port, server, Load("warm-up", 1, 8), pools[1], min(seconds, 3))
    run_load(port, server, Load("warm-up", 32, 2), pools[32], min(seconds, 3))
    results = {}
    for load in loads:
        results[load] = run_load(port, server, load, pools[load.texts_per_request], seconds)
        print(f"  {load.name}: {results[load]}", flush=True)
    return results


def in_process(model_dir: Path, pools: dict[int, list[str]], seconds: float) -> dict[int, float]:
    """Texts/s of ``SentenceTransformer.encode`` (batch 32) over each pool, repeated; and, under
    key 0, the median milliseconds of encoding one short text alone."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu")
    st.encode(pools[1][:64], batch_size=32)
    out = {}
    for n, pool in pools.items():
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            st.encode(pool, batch_size=32)
            done += len(pool)
        out[n] = done / (time.perf_counter() - started)
    alone = []
    for text in pools[1][:200]:
        started = time.perf_counter()
        st.encode(text)
        alone.append(time.perf_counter() - started)
    out[0] = float(np.median(alone) * 1000)
    return out


# report ------------------------------------------------------------------------------------


def table(loads: list[Load], ours: dict, theirs: dict | None, local: dict[int, float]) -> str:
    rows = [
        "| load | ours texts/s | p50 ms | p99 ms | infinity texts/s | p50 ms | p99 ms "
        "| ours/infinity | in-process texts/s | ours/in-process |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for load in loads:
        o, i = ours[load], (theirs or {}).get(load)
        inf = f"{i.texts_per_s:.0f} | {i.p50_ms:.1f} | {i.p99_ms:.1f} | " if i else "- | - | - | "
        ratio = f"{o.texts_per_s / i.texts_per_s:.2f}x" if i else "-"
        base = local[load.texts_per_request]
        rows.append(
            f"| {load.name} | {o.texts_per_s:.0f} | {o.p50_ms:.1f} | {o.p99_ms:.1f} | {inf}"
            f"{ratio} | {base:.0f} | {o.texts_per_s / base:.2f}x |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0, help="per load")
    parser.add_argument("--texts", type=int, default=512, help="queries and passages used")
    parser.add_argument("--batch-concurrency", type=int, default=4, help="for 32-text requests")
    parser.add_argument("--infinity", default="/tmp/infinity-venv/bin/infinity_emb")
    parser.add_argument("--skip-infinity", action="store_true")
    parser.add_argument("--int8", action="store_true", help="also serve the model at int8")
    parser.add_argument("--stall", action="store_true", help="only the large-input figure")
    parser.add_argument("--rerank", type=Path, help="a reranker directory: /v1/rerank only")
    args = parser.parse_args()
    if args.rerank:
        rerank_bench(args.rerank, args)
        return
    if args.stall:
        with tempfile.TemporaryDirectory() as tmp, embedtune(port := free_port(), Path(tmp)) as s:
            run_load(port, s, Load("warm-up", 1, 1), texts(64)[0], 2)
            stall(port, s, texts(args.texts)[0], args.seconds)
        return

    import torch

    from core.models.resolve import resolve_model

    model_dir = resolve_model(MODEL).path
    queries, passages = texts(args.texts)
    pools = {1: queries, 32: passages}
    loads = [
        Load("1 text, c=1", 1, 1),
        Load("1 text, c=8", 1, 8),
        Load("1 text, c=32", 1, 32),
        Load(f"32 texts, c={args.batch_concurrency}", 32, args.batch_concurrency),
    ]
    print(f"model {model_dir}; {os.cpu_count()} CPUs; torch threads {torch.get_num_threads()}")
    local = in_process(model_dir, pools, args.seconds)
    print(f"in process: {local}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        port = free_port()
        with embedtune(port, workdir / "fp32") as server:
            print("embedtune:", flush=True)
            ours = measure(server, port, loads, pools, args.seconds)
        int8 = None
        if args.int8:
            with embedtune(port := free_port(), workdir / "int8", int8=True) as server:
                print("embedtune, int8:", flush=True)
                int8 = measure(server, port, loads, pools, args.seconds)
        theirs = None
        if not args.skip_infinity and Path(args.infinity).exists():
            port = free_port()
            with infinity(args.infinity, port, model_dir, workdir) as server:
                print("infinity-emb:", flush=True)
                theirs = measure(server, port, loads, pools, args.seconds)
        elif not args.skip_infinity:
            print(f"infinity-emb not found at {args.infinity}; see this file's docstring")
    print(table(loads, ours, theirs, local))
    if int8:
        print("the same with the model served at int8 (EMBEDTUNE_SERVE_INT8_MODELS):")
        print(table(loads, int8, theirs, local))
    print(f"in-process SentenceTransformer.encode of one short text alone: p50 {local[0]:.1f} ms")
    print(TARGETS)


if __name__ == "__main__":
    main()

"""A real Celery worker process on real Redis and Postgres, and an API client beside it."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.main import create_app
from core.settings import Settings
from tests.conftest import REDIS, SAMPLE, create_key

READY_TIMEOUT_S = 120


@pytest.fixture(scope="module")
def e2e_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, broker_prefix: str
) -> Settings:
    # A queue prefix per module, so a module's worker never sees another module's jobs.
    prefix = f"{broker_prefix}{uuid.uuid4().hex[:6]}:"
    return Settings(
        data_dir=tmp_path_factory.mktemp("e2e") / "var",
        database_url=pg_url,
        broker_url=REDIS,
        broker_prefix=prefix,
        heartbeat_seconds=1,
        lease_seconds=6,
        reconcile_seconds=1,
    )


def process_env(settings: Settings) -> dict[str, str]:
    """The environment that points a worker or reconciler process at ``settings``."""
    return {
        **os.environ,
        "EMBEDTUNE_DATA_DIR": str(settings.data_dir),
        "EMBEDTUNE_DATABASE_URL": settings.db_url,
        "EMBEDTUNE_BROKER_URL": REDIS,
        "EMBEDTUNE_BROKER_PREFIX": settings.broker_prefix,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "EMBEDTUNE_HEARTBEAT_SECONDS": str(settings.heartbeat_seconds),
        "EMBEDTUNE_LEASE_SECONDS": str(settings.lease_seconds),
        "EMBEDTUNE_JOB_MAX_ATTEMPTS": str(settings.job_max_attempts),
        "EMBEDTUNE_RECONCILE_SECONDS": str(settings.reconcile_seconds),
        **(
            {"EMBEDTUNE_WORKER_METRICS_PORT": str(settings.worker_metrics_port)}
            if settings.worker_metrics_port
            else {}
        ),
        **llm_env(settings),
    }


def llm_env(settings: Settings) -> dict[str, str]:
    """The LLM endpoint of ``settings`` (query synthesis), when it has one."""
    if not settings.llm_base_url or not settings.llm_model:
        return {}
    return {
        "EMBEDTUNE_LLM_BASE_URL": settings.llm_base_url,
        "EMBEDTUNE_LLM_MODEL": settings.llm_model,
        "EMBEDTUNE_LLM_API_KEY": settings.llm_api_key.get_secret_value(),
        "EMBEDTUNE_LLM_CONCURRENCY": str(settings.llm_concurrency),
        "EMBEDTUNE_LLM_MAX_RETRIES": str(settings.llm_max_retries),
    }


def start_worker(settings: Settings, log: Path) -> subprocess.Popen:
    argv = [
        sys.executable,
        "-m",
        "workers",
        "worker",
        "-Q",
        "cpu,gpu",
        "--concurrency",
        "1",
        "--loglevel",
        "INFO",
        "-n",
        f"e2e-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
    ]
    process = subprocess.Popen(  # its own session, so a test can kill the whole worker
        argv,
        start_new_session=True,
        env=process_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )
    deadline = time.monotonic() + READY_TIMEOUT_S
    while b"ready." not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    return process


class Workers:
    """Starts workers on demand; every one still running is stopped at the end."""

    def __init__(self, settings: Settings, folder: Path) -> None:
        self.settings, self.folder, self.started = settings, folder, []

    def start(self) -> subprocess.Popen:
        process = start_worker(self.settings, self.folder / f"worker-{len(self.started)}.log")
        self.started.append(process)
        return process

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        os.killpg(process.pid, sig)
        process.wait(timeout=60)


@pytest.fixture
def workers(e2e_settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(e2e_settings, tmp_path)
    yield pool
    for process in pool.started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=60)


@pytest.fixture(scope="module")
def worker(e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    process = start_worker(e2e_settings, log)
    yield log
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def start_reconciler(settings: Settings, log: Path) -> subprocess.Popen:
    """``embedtune reconciler`` on ``settings``, writing to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli", "reconciler"],
        env=process_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parents[2],
    )


@pytest.fixture(scope="module")
def reconciler(
    e2e_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[subprocess.Popen]:
    """The deployment's one reconciler process (``embedtune reconciler``)."""
    process = start_reconciler(e2e_settings, tmp_path_factory.mktemp("reconciler") / "log")
    yield process
    process.terminate()
    process.wait(timeout=30)


@pytest.fixture(scope="module")
def api(e2e_settings: Settings, reconciler: subprocess.Popen) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {create_key(e2e_settings)}"}
    with TestClient(create_app(e2e_settings), headers=headers) as client:
        yield client
    # Jobs a module leaves active must not be adopted by the next module's reconciler.
    engine = create_engine(e2e_settings.db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'cancelled', lease_token = NULL "
                "WHERE status IN ('queued', 'running')"
            )
        )
    engine.dispose()


@pytest.fixture(scope="module")
def sample_id(api: TestClient) -> str:
    files = [
        ("files", (str(p.relative_to(SAMPLE)), p.read_bytes()))
        for p in sorted(SAMPLE.rglob("*"))
        if p.suffix in (".jsonl", ".tsv")
    ]
    response = api.post("/v1/datasets", files=files, data={"name": "scifact-sample"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def wait_for(
    api: TestClient,
    job_id: str,
    *,
    until: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
    timeout: float = 600,
) -> tuple[dict, list[float]]:
    """Poll a job until it reaches one of ``until``; returns it and the progress seen."""
    seen: list[float] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        seen.append(job["progress"])
        if job["status"] in until:
            return job, seen
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")


@pytest.fixture(scope="module")
def tiny_ref(e2e_settings: Settings, tiny_model_dir: Path) -> str:
    """The tiny model placed where operators put local models; API clients name it."""
    shutil.copytree(tiny_model_dir, e2e_settings.models_dir / "tiny-bert", dirs_exist_ok=True)
    return "tiny-bert"

"""The dashboard in a real browser: the API as a real HTTP server (uvicorn, its own process),
a real Celery worker and reconciler on Postgres and Redis, and the distribution's Chromium
driven by Playwright (``apt-get install chromium``; Playwright's own browser download is not
used). Screenshots go to ``$EMBEDTUNE_UI_SCREENSHOTS`` (default ``var/ui-screenshots``)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright
from sqlalchemy import create_engine, text

from core.settings import Settings
from tests.conftest import REDIS, REPO, SAMPLE, create_key
from tests.e2e.conftest import process_env, reconciler, tiny_ref, worker  # noqa: F401

SYSTEM_CHROMIUM = Path(os.environ.get("EMBEDTUNE_CHROMIUM", "/usr/bin/chromium"))
SHOTS = Path(os.environ.get("EMBEDTUNE_UI_SCREENSHOTS", REPO / "var" / "ui-screenshots"))
READY_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def e2e_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, broker_prefix: str
) -> Settings:
    """The e2e settings (tests/e2e/conftest.py), with the worker serving its metrics."""
    return Settings(
        data_dir=tmp_path_factory.mktemp("ui") / "var",
        database_url=pg_url,
        broker_url=REDIS,
        broker_prefix=f"{broker_prefix}{uuid.uuid4().hex[:6]}:",
        heartbeat_seconds=1,
        lease_seconds=6,
        reconcile_seconds=1,
        worker_metrics_port=free_port(),
    )


@pytest.fixture(scope="module")
def server(
    e2e_settings: Settings, request: pytest.FixtureRequest, tmp_path_factory
) -> Iterator[str]:
    """``embedtune api`` on a free loopback port, beside a worker and the reconciler; its URL."""
    for needed in ("worker", "reconciler"):  # the e2e fixtures imported above
        request.getfixturevalue(needed)
    port = free_port()
    log = tmp_path_factory.mktemp("api") / "api.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "cli", "api", "--port", str(port)],
        env=process_env(e2e_settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=REPO,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the API did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.3)
    yield url
    process.terminate()
    process.wait(timeout=30)
    engine = create_engine(e2e_settings.db_url)  # nothing left for the next module's workers
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE jobs SET status = 'cancelled', lease_token = NULL "
                "WHERE status IN ('queued', 'running')"
            )
        )
    engine.dispose()


@pytest.fixture(scope="module")
def key(e2e_settings: Settings) -> str:
    return create_key(e2e_settings, "user")


@pytest.fixture(scope="module")
def client(server: str, key: str) -> Iterator[httpx.Client]:
    """The same API over HTTP, for what a test sets up without the browser."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server, headers=headers, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def sample_id(client: httpx.Client) -> str:
    files = [
        ("files", (str(p.relative_to(SAMPLE)), p.read_bytes()))
        for p in sorted(SAMPLE.rglob("*"))
        if p.suffix in (".jsonl", ".tsv")
    ]
    response = client.post("/v1/datasets", files=files, data={"name": "scifact-sample"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def small_id(client: httpx.Client) -> str:
    """A small BEIR dataset (48 documents, 24 queries, train and test), for quick fine-tunes."""
    corpus = "".join(
        json.dumps({"_id": f"d{i}", "title": f"Topic {i % 12}", "text": f"notes {i} on topic {i}"})
        + "\n"
        for i in range(48)
    )
    queries = "".join(
        json.dumps({"_id": f"q{i}", "text": f"about topic {i}"}) + "\n" for i in range(24)
    )
    qrels = {
        split: "query-id\tcorpus-id\tscore\n"
        + "".join(f"q{i}\td{i}\t1\n" for i in range(24) if (i % 4 == 0) == (split == "test"))
        for split in ("train", "test")
    }
    parts = {"corpus.jsonl": corpus, "queries.jsonl": queries}
    parts |= {f"qrels/{split}.tsv": body for split, body in qrels.items()}
    files = [("files", (name, body.encode())) for name, body in parts.items()]
    response = client.post("/v1/datasets", files=files, data={"name": "small"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # The distribution's Chromium, else the one `playwright install chromium` fetched.
        found = [
            p for p in (SYSTEM_CHROMIUM, Path(playwright.chromium.executable_path)) if p.exists()
        ]
        assert found, (
            f"no Chromium: {SYSTEM_CHROMIUM} is missing (apt-get install -y chromium) and "
            "Playwright has none (.venv/bin/playwright install chromium)"
        )
        launched = playwright.chromium.launch(executable_path=str(found[0]), headless=True)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: str) -> Iterator[Page]:
    """A fresh tab (its own session storage); fails the test on a script error or a console
    error (a refused content-security-policy included)."""
    context = browser.new_context(base_url=server, viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))

    def on_console(message: ConsoleMessage) -> None:
        # The browser logs every non-2xx fetch; the tests provoke some (401, 422) on purpose.
        if message.type == "error" and "Failed to load resource" not in message.text:
            problems.append(f"console: {message.text}")

    tab.on("console", on_console)
    yield tab
    context.close()
    assert not problems, problems


@pytest.fixture(scope="session")
def shots() -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    print(f"\nUI screenshots: {SHOTS}")
    return SHOTS


def sign_in(tab: Page, key: str, where: str = "#/jobs") -> None:
    tab.goto(f"/ui/{where}")
    tab.fill("#api-key", key)
    tab.press("#api-key", "Enter")
    tab.locator("#login").wait_for(state="hidden")


def wait_job(client: httpx.Client, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")

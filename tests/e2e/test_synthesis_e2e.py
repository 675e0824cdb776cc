"""Raw documents to a tuned model with real worker processes: upload → synthesize (offline)
→ finetune → eval; and an LLM synthesis whose worker is killed mid-way, resumed by another,
asking the loopback chat-completions server nothing twice."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.conftest import REDIS
from tests.e2e.conftest import Workers, wait_for
from tests.llm_server import ChatServer

KEY = "sk-e2e-secret-5678"
TOPICS = ["insulin", "malaria", "vaccines", "statins", "asthma", "sepsis", "anemia", "gout"]


@pytest.fixture(scope="module")
def chat() -> Iterator[ChatServer]:
    server = ChatServer()
    server.url = server.start()  # type: ignore[attr-defined]
    yield server
    server.stop()


@pytest.fixture(scope="module")
def e2e_settings(
    tmp_path_factory: pytest.TempPathFactory, pg_url: str, broker_prefix: str, chat: ChatServer
) -> Settings:
    """The e2e settings, with the loopback LLM as the operator's endpoint (one request in
    flight, so that the request held at the kill is the only unanswered one)."""
    return Settings(
        data_dir=tmp_path_factory.mktemp("e2e-synth") / "var",
        database_url=pg_url,
        broker_url=REDIS,
        broker_prefix=f"{broker_prefix}{uuid.uuid4().hex[:6]}:",
        heartbeat_seconds=1,
        lease_seconds=6,
        reconcile_seconds=1,
        llm_base_url=chat.url,  # type: ignore[attr-defined]
        llm_model="test-llm",
        llm_api_key=KEY,
        llm_concurrency=1,
    )


def upload(api: TestClient, records: list[dict], name: str) -> str:
    body = "".join(json.dumps(r) + "\n" for r in records).encode()
    response = api.post(
        "/v1/documents", files=[("files", ("docs.jsonl", body))], data={"name": name}
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(api: TestClient, kind: str, spec: dict) -> str:
    response = api.post("/v1/jobs", json={"type": kind, "spec": spec})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_documents_to_a_tuned_model_through_the_worker(
    api: TestClient, workers: Workers, tiny_ref: str
) -> None:
    records = [
        {
            "id": f"doc{i}",
            "title": f"Effect of {TOPICS[i % 8]} in trial {i}",
            "text": f"Trial {i} measured {TOPICS[i % 8]} outcomes in {i * 10} patients. "
            f"The {TOPICS[i % 8]} arm improved by {i} points. Side effects were rare.",
        }
        for i in range(48)
    ]
    corpus = upload(api, records, "trials")
    workers.start()
    synth = submit(
        api,
        "synthesize",
        {
            "dataset_id": corpus,
            "model": tiny_ref,
            "options": {"generators": ["title", "inverse_cloze"], "round_trip_k": 20},
        },
    )
    job, _ = wait_for(api, synth, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    dataset = job["result"]["dataset_id"]
    assert job["result"]["removed"]["round_trip"] >= 0
    tune = submit(
        api,
        "finetune",
        {
            "dataset_id": dataset,
            "base_model": tiny_ref,
            "val_split": "val",
            "params": {"epochs": 1, "batch_size": 16, "max_seq_length": 32},
        },
    )
    tuned, _ = wait_for(api, tune, timeout=600)
    assert tuned["status"] == "succeeded", tuned["error"]
    evaluated = submit(
        api,
        "eval",
        {"dataset_id": dataset, "model": tuned["result"]["model_id"], "split": "test"},
    )
    report, _ = wait_for(api, evaluated, timeout=300)
    assert report["status"] == "succeeded", report["error"]
    assert 0 < report["result"]["metrics"]["ndcg@10"] <= 1


def test_kill_9_mid_llm_synthesis_then_resume_asks_no_chunk_twice(
    api: TestClient, workers: Workers, chat: ChatServer, e2e_settings: Settings
) -> None:
    records = [{"id": f"c{i}", "text": f"chunk-{i} reports finding {i}."} for i in range(10)]
    corpus = upload(api, records, "findings")
    chat.requests.clear()
    chat.hold_at = 4  # the 4th request waits: the worker is killed while it is in flight
    chat.held.clear()
    job_id = submit(
        api,
        "synthesize",
        {
            "dataset_id": corpus,
            "options": {"generators": ["llm"], "queries_per_chunk": 2, "round_trip_k": 0},
        },
    )
    first = workers.start()
    assert chat.held.wait(timeout=120), "the worker never reached the 4th request"
    workers.kill(first)
    threading.Timer(0.5, chat.release).start()
    workers.start()
    job, _ = wait_for(api, job_id, timeout=300)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert chat.answered() == {f"chunk-{i}": 1 for i in range(10)}  # none answered twice
    held = chat.requests[3]
    assert not held.answered  # the one request in flight at the kill had no answer
    llm = job["result"]["llm"]
    assert llm["resumed"] == 3 and llm["asked"] == 7 and llm["failed"] == 0
    metrics = api.get(f"/v1/jobs/{job_id}/metrics").json()
    assert KEY not in json.dumps(job) + json.dumps(metrics)
    events = api.get(f"/v1/jobs/{job_id}/events").json()
    assert KEY not in json.dumps(events)
    assert "llm_tokens" in json.dumps(metrics)
    made = api.get(f"/v1/datasets/{job['result']['dataset_id']}").json()
    assert made["stats"]["queries"] == 20 - sum(job["result"]["removed"].values())

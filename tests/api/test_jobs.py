"""/v1/jobs through HTTP: submission, validation, listing, events, metrics, cancellation."""

from __future__ import annotations

import redis
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from tests.conftest import REDIS

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def eval_job(dataset_id: str, **spec: object) -> dict:
    return {"type": "eval", "spec": {"dataset_id": dataset_id, "model": MINILM, **spec}}


def queued_messages(settings: Settings, queue: str) -> int:
    return redis.Redis.from_url(REDIS).llen(f"{settings.broker_prefix}{queue}")


def test_submit_stores_the_job_then_enqueues_it(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    before = queued_messages(settings, "cpu")
    response = client.post("/v1/jobs", json=eval_job(dataset_id, split="test"))
    assert response.status_code == 202
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert (job["status"], job["type"], job["progress"], job["attempts"]) == (
        "queued",
        "eval",
        0,
        0,
    )
    assert job["spec"]["split"] == "test" and job["spec"]["batch_size"] == 64
    assert queued_messages(settings, "cpu") == before + 1
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    events = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert [(e["kind"], e["message"]) for e in events] == [("state", "queued")]


def test_finetune_goes_to_the_gpu_queue(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    before = queued_messages(settings, "gpu")
    response = client.post(
        "/v1/jobs",
        json={
            "type": "finetune",
            "spec": {
                "dataset_id": dataset_id,
                "base_model": MINILM,
                "method": "adapter",
                "params": {"epochs": 1},
            },
        },
    )
    assert response.status_code == 202, response.text
    assert queued_messages(settings, "gpu") == before + 1


def test_bad_submissions_are_4xx_with_code_and_param(client: TestClient, dataset_id: str) -> None:
    cases = [
        ({"type": "train", "spec": {}}, 422, "invalid_request", None),
        ({"type": "eval", "spec": {"model": MINILM}}, 422, "invalid_request", "spec.dataset_id"),
        (eval_job(dataset_id, batch_size=0), 422, "invalid_request", "spec.batch_size"),
        (eval_job(dataset_id, surprise=1), 422, "invalid_request", "spec.surprise"),
        (eval_job("ds_missing"), 404, "dataset_not_found", "id"),
        (
            {"type": "eval", "spec": {"dataset_id": dataset_id, "model": "no-such-model"}},
            404,
            "model_not_found",
            "model",
        ),
        (
            {
                "type": "mine",
                "spec": {
                    "dataset_id": dataset_id,
                    "model": MINILM,
                    "options": {"range_max": "many"},
                },
            },
            422,
            None,
            None,
        ),
        (
            {
                "type": "mine",
                "spec": {"dataset_id": dataset_id, "model": MINILM, "options": {"depth": 3}},
            },
            422,
            "invalid_request",
            "spec.options.depth",
        ),
        (
            {
                "type": "finetune",
                "spec": {
                    "dataset_id": dataset_id,
                    "base_model": MINILM,
                    "params": {"learning_rate": -1},
                },
            },
            422,
            None,
            "learning_rate",
        ),
    ]
    for body, status, code, param in cases:
        response = client.post("/v1/jobs", json=body)
        assert response.status_code == status, (body, response.text)
        error = response.json()["error"]
        assert code is None or error["code"] == code, (body, error)
        assert param is None or error["param"] == param, (body, error)
    assert client.get("/v1/jobs").json()["total"] == 0  # nothing half-stored


def test_list_filters_and_paginates(client: TestClient, dataset_id: str) -> None:
    evals = [client.post("/v1/jobs", json=eval_job(dataset_id)).json()["id"] for _ in range(3)]
    index = client.post(
        "/v1/jobs", json={"type": "index", "spec": {"dataset_id": dataset_id, "model": MINILM}}
    ).json()["id"]
    client.post(f"/v1/jobs/{evals[0]}/cancel")
    assert client.get("/v1/jobs").json()["total"] == 4
    assert [j["id"] for j in client.get("/v1/jobs", params={"type": "index"}).json()["items"]] == [
        index
    ]
    cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()
    assert [j["id"] for j in cancelled["items"]] == [evals[0]]
    page = client.get("/v1/jobs", params={"type": "eval", "limit": 2, "offset": 1}).json()
    assert page["total"] == 3 and [j["id"] for j in page["items"]] == evals[::-1][1:3]
    assert client.get("/v1/jobs", params={"status": "sleeping"}).status_code == 422


def test_cancel_queued_running_and_finished(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    queued = client.post("/v1/jobs", json=eval_job(dataset_id)).json()["id"]
    response = client.post(f"/v1/jobs/{queued}/cancel")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"

    running = client.post("/v1/jobs", json=eval_job(dataset_id)).json()["id"]
    engine = create_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'running' WHERE id = :id"), {"id": running})
    engine.dispose()
    body = client.post(f"/v1/jobs/{running}/cancel").json()
    assert (body["status"], body["cancel_requested"]) == ("running", True)

    again = client.post(f"/v1/jobs/{queued}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "job_finished"
    assert client.post("/v1/jobs/job_missing/cancel").status_code == 404


def test_metrics_are_served_as_series(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    job_id = client.post("/v1/jobs", json=eval_job(dataset_id)).json()["id"]
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        for step, loss in ((1, 2.0), (2, 1.5), (3, 1.1)):
            repos.add_metrics(
                session,
                job_id=job_id,
                step=step,
                values={"loss": loss, "learning_rate": 1e-5 * step},
            )
    body = client.get(f"/v1/jobs/{job_id}/metrics").json()
    assert [p["value"] for p in body["series"]["loss"]] == [2.0, 1.5, 1.1]
    assert [p["step"] for p in body["series"]["learning_rate"]] == [1, 2, 3]
    only = client.get(f"/v1/jobs/{job_id}/metrics", params={"name": "loss"}).json()
    assert list(only["series"]) == ["loss"]


def test_missing_job_routes_are_404(client: TestClient) -> None:
    for path in ("/v1/jobs/job_x", "/v1/jobs/job_x/events", "/v1/jobs/job_x/metrics"):
        response = client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "job_not_found"

"""/v1/models, /healthz, /readyz and the error contract."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import ModelRow


def test_models_lists_the_packaged_base_model_in_openai_shape(client: TestClient) -> None:
    body = client.get("/v1/models").json()
    assert body["object"] == "list"
    base = body["data"][0]
    assert {
        "id": "sentence-transformers/all-MiniLM-L6-v2",
        "object": "model",
        "owned_by": "sentence-transformers",
        "kind": "base",
    }.items() <= base.items()
    assert base["created"] > 0
    assert client.get(f"/v1/models/{base['id']}").json() == base  # the "/" in the id is fine


def test_tuned_model_read_and_delete(client: TestClient, settings: Settings, tmp_path: Path):
    model_dir = tmp_path / "tuned"
    model_dir.mkdir()
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = repos.upsert_by_job(
            session,
            ModelRow,
            job_id=None,
            reference="x",
            kind="finetuned",
            method="lora",
            base_model="b",
            path=str(model_dir),
            metrics={"after": {"ndcg@10": 0.7}},
        )
        model_id = row.id
    listed = {m["id"]: m for m in client.get("/v1/models").json()["data"]}
    assert listed[model_id]["metrics"]["after"]["ndcg@10"] == 0.7
    assert client.get(f"/v1/models/{model_id}").json()["method"] == "lora"
    assert client.delete(f"/v1/models/{model_id}").status_code == 204
    assert not model_dir.exists()
    for method in ("get", "delete"):
        response = getattr(client, method)(f"/v1/models/{model_id}")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"


def test_health_and_readiness(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "storage": "ok"}


def test_unknown_route_and_method_use_the_error_body(client: TestClient) -> None:
    response = client.get("/v1/nothing")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    response = client.put("/v1/jobs")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_openapi_docs_are_served(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/datasets", "/v1/jobs", "/v1/jobs/{job_id}/cancel", "/v1/models", "/readyz"):
        assert path in paths

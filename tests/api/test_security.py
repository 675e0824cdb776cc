"""Access and hostile input: API keys and roles, rate limits, idempotency, model references."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.main import create_app
from core.settings import Settings
from tests.api.conftest import beir_files
from tests.conftest import create_key

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


def as_key(client: TestClient, key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {"Authorization": ""}


def test_every_route_but_the_probes_needs_a_valid_key(settings: Settings) -> None:
    lenient = settings.model_copy(update={"auth_failures_burst": 10_000})
    with TestClient(create_app(lenient)) as client:
        paths = client.get("/openapi.json").json()["paths"]
        revoked = create_key(settings, "admin")
        engine = create_engine(settings.db_url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE api_keys SET revoked_at = now() WHERE name = 'test-admin' AND id = :id"
                ),
                {"id": revoked.split("_")[1]},
            )
        engine.dispose()
        for bad in (None, "et_nope_nope", "not-a-key", revoked, revoked[:-1] + "x"):
            for path, operations in paths.items():
                for method in operations:
                    url = path.replace("{", "").replace("}", "")
                    response = client.request(method, url, headers=as_key(client, bad))
                    if path in ("/healthz", "/readyz"):
                        assert response.status_code == 200
                        continue
                    assert response.status_code == 401, (method, path, bad, response.text)
                    assert response.json()["error"]["code"] == "invalid_api_key"
                    assert response.headers["www-authenticate"] == "Bearer"


def test_inference_keys_cannot_submit_jobs_or_read_datasets(
    client: TestClient, settings: Settings, dataset_id: str
) -> None:
    inference = as_key(client, create_key(settings, "inference"))
    assert client.get("/v1/models", headers=inference).status_code == 200
    assert client.get("/readyz", headers=inference).status_code == 200
    for method, path in (
        ("get", "/v1/datasets"),
        ("get", f"/v1/datasets/{dataset_id}"),
        ("post", "/v1/jobs"),
        ("get", "/v1/jobs"),
        ("delete", f"/v1/datasets/{dataset_id}"),
    ):
        response = client.request(method, path, headers=inference, json={})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "forbidden"
    user = as_key(client, create_key(settings, "user"))
    job = {"type": "eval", "spec": {"dataset_id": dataset_id, "model": MINILM}}
    assert client.post("/v1/jobs", json=job, headers=user).status_code == 202


def test_keys_are_stored_hashed(settings: Settings) -> None:
    key = create_key(settings, "user")
    engine = create_engine(settings.db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, secret_hash FROM api_keys")).all()
    engine.dispose()
    secret = key.split("_", 2)[2]
    assert all(secret not in str(row) for row in rows)
    assert any(row.id == key.split("_")[1] and len(row.secret_hash) == 64 for row in rows)


def test_rate_limit_answers_429_with_retry_after(settings: Settings) -> None:
    limited = settings.model_copy(update={"rate_limit_per_minute": 6, "rate_limit_burst": 3})
    headers = {"Authorization": f"Bearer {create_key(limited, 'user')}"}
    with TestClient(create_app(limited), headers=headers) as client:
        codes = [client.get("/v1/jobs").status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        response = client.get("/v1/jobs")
        assert response.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(response.headers["retry-after"]) <= 10
        other = {"Authorization": f"Bearer {create_key(limited, 'user')}"}
        assert client.get("/v1/jobs", headers=other).status_code == 200  # per key


def test_failed_keys_are_rate_limited_per_client_address(settings: Settings) -> None:
    limited = settings.model_copy(update={"auth_failures_per_minute": 6, "auth_failures_burst": 3})
    good = {"Authorization": f"Bearer {create_key(limited, 'user')}"}
    app = create_app(limited)
    neighbour = TestClient(app, client=("10.0.0.2", 50000))
    with TestClient(app) as client:
        assert client.get("/v1/jobs", headers=good).status_code == 200  # accepted, cached
        wrong = [{"Authorization": "Bearer et_nope_nope"}, {}, {"X-API-Key": "guess"}]
        assert [client.get("/v1/jobs", headers=h).status_code for h in wrong] == [401] * 3
        refused = client.get("/v1/jobs", headers={"Authorization": "Bearer et_x_y"})
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 10
        assert client.get("/v1/jobs", headers=good).status_code == 200  # its key still works
        assert neighbour.get("/v1/jobs", headers=wrong[0]).status_code == 401  # per address


def revoke(settings: Settings, key: str) -> None:
    engine = create_engine(settings.db_url)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE api_keys SET revoked_at = now() WHERE id = :id"), {"id": key.split("_")[1]}
        )
    engine.dispose()


def test_a_revoked_key_stops_working_within_the_auth_cache_ttl(settings: Settings) -> None:
    for ttl in (0.0, 1.0):
        cached = settings.model_copy(update={"auth_cache_seconds": ttl})
        key = create_key(cached, "inference")
        headers = {"Authorization": f"Bearer {key}"}
        with TestClient(create_app(cached), headers=headers) as client:
            assert client.get("/v1/models").status_code == 200
            revoke(cached, key)
            deadline = time.monotonic() + ttl + 0.5  # slack for a slow request
            while client.get("/v1/models").status_code == 200:
                assert time.monotonic() < deadline, f"still accepted {ttl}s after revocation"
                time.sleep(0.1)
            assert client.get("/v1/models").json()["error"]["code"] == "invalid_api_key"


def test_idempotent_job_submission(client: TestClient, dataset_id: str) -> None:
    job = {"type": "eval", "spec": {"dataset_id": dataset_id, "model": MINILM}}
    first = client.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k1"})
    again = client.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    assert again.headers["location"] == first.headers["location"]
    assert client.get("/v1/jobs").json()["total"] == 1
    other = {**job, "spec": {**job["spec"], "split": "train"}}
    reused = client.post("/v1/jobs", json=other, headers={"Idempotency-Key": "k1"})
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    # A request that failed keeps no reservation: fixing it and retrying works.
    bad = {"type": "eval", "spec": {"dataset_id": "ds_missing", "model": MINILM}}
    assert client.post("/v1/jobs", json=bad, headers={"Idempotency-Key": "k2"}).status_code == 404
    assert client.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k2"}).status_code == 202


def test_idempotent_dataset_upload(client: TestClient) -> None:
    first = client.post("/v1/datasets", files=beir_files(), headers={"Idempotency-Key": "u1"})
    again = client.post("/v1/datasets", files=beir_files(), headers={"Idempotency-Key": "u1"})
    assert first.status_code == again.status_code == 201
    assert first.json()["id"] == again.json()["id"]
    assert client.get("/v1/datasets").json()["total"] == 1
    other = client.post("/v1/datasets", files=beir_files(4), headers={"Idempotency-Key": "u1"})
    assert other.status_code == 409


@pytest.mark.parametrize(
    "ref",
    [
        "../models/x",
        "/etc/passwd",
        "~/model",
        "file:///etc",
        "file:model",
        "%2e%2e/secret",
        "a/%2e%2e/%2e%2e/etc",
        "..%2fsecret",
        "C:\\models\\x",
        "a\\..\\b",
        "http://evil/x",
    ],
)
def test_model_references_cannot_name_paths(client: TestClient, dataset_id: str, ref: str):
    response = client.post(
        "/v1/jobs", json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": ref}}
    )
    assert response.status_code in (404, 422), response.text
    assert response.json()["error"]["param"] == "model"
    assert client.get("/v1/jobs").json()["total"] == 0


def test_models_under_the_models_dir_are_named(
    client: TestClient, settings: Settings, dataset_id: str, tiny_model_dir
) -> None:
    import shutil

    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny-bert")
    response = client.post(
        "/v1/jobs", json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": "tiny-bert"}}
    )
    assert response.status_code == 202
    direct = client.post(
        "/v1/jobs",
        json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": str(tiny_model_dir)}},
    )
    assert direct.status_code == 422 and direct.json()["error"]["code"] == "invalid_model"

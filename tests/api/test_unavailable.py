"""Probes and answers while a dependency is down: 503 naming it, never a 500."""

from __future__ import annotations

import socket
import uuid

from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from api.main import create_app
from core.settings import Settings
from core.store.db import upgrade
from tests.conftest import PG_ADMIN, create_key

NO_KEY = {"Authorization": ""}


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "unavailable" and error["type"] == "service_unavailable"
    assert error["message"] == "the database is unavailable; retry shortly"


def test_readiness_needs_no_key(client: TestClient) -> None:
    ready = client.get("/readyz", headers=NO_KEY)
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "storage": "ok"},
    }


def test_an_unreachable_database_answers_503_on_probes_and_keyed_routes(
    settings: Settings,
) -> None:
    down = f"postgresql+psycopg://postgres:hunter2@127.0.0.1:{closed_port()}/embedtune"
    broken = settings.model_copy(update={"database_url": down})
    with TestClient(create_app(broken), headers={"Authorization": "Bearer et_ab_cd"}) as client:
        ready = client.get("/readyz", headers=NO_KEY)
        assert ready.status_code == 503
        body = ready.json()
        assert body["status"] == "unavailable"
        assert body["checks"] == {
            "database": "error: OperationalError",
            "broker": "ok",
            "storage": "ok",
        }
        for method, path in (("get", "/v1/models"), ("get", "/v1/jobs"), ("post", "/v1/jobs")):
            response = client.request(method, path, json={})
            assert_unavailable(response)
            assert "hunter2" not in response.text and "127.0.0.1" not in response.text


def test_a_database_lost_after_the_key_was_accepted_answers_503(settings: Settings) -> None:
    name = f"embedtune_gone_{uuid.uuid4().hex[:8]}"
    admin = create_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        own = settings.model_copy(update={"database_url": f"{PG_ADMIN}/{name}"})
        upgrade(own.db_url)
        headers = {"Authorization": f"Bearer {create_key(own, 'user')}"}
        with TestClient(create_app(own), headers=headers) as client:
            assert client.get("/v1/jobs").status_code == 200  # the key is now cached
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
            assert_unavailable(client.get("/v1/jobs"))
            assert client.get("/readyz").json()["checks"]["database"].startswith("error: ")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_readiness_names_unreachable_broker_and_storage(settings: Settings) -> None:
    blocked = settings.data_dir.parent / "a-file"
    blocked.parent.mkdir(parents=True, exist_ok=True)
    blocked.write_text("not a directory")
    broken = settings.model_copy(
        update={"broker_url": f"redis://127.0.0.1:{closed_port()}/0", "data_dir": blocked / "var"}
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["database"] == "ok"
    assert checks["broker"].startswith("error: ") and checks["storage"].startswith("error: ")
    assert str(blocked) not in response.text

"""Security round 2, one test per finding: names never reach the filesystem, values the
database cannot store are refused before anything is committed, model references never
resolve against the working directory, and a broker or process failure leaves one job.
Each runs on real Postgres and on SQLite (the ``embedtune up`` store)."""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.main import create_app
from core.jobs.reconcile import reconcile
from core.settings import Settings
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import IdempotencyRow, JobRow, utcnow
from tests.api.conftest import beir_files
from tests.conftest import create_key

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
TRAVERSAL = "../../escaped"


@pytest.fixture
def api(backend: Settings) -> Iterator[TestClient]:
    headers = {"Authorization": f"Bearer {create_key(backend, 'user')}"}
    with TestClient(create_app(backend), headers=headers) as client:
        yield client


@pytest.fixture
def uploaded(api: TestClient) -> str:
    response = api.post("/v1/datasets", files=beir_files(), data={"name": "mini"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def files_outside(root: Path, inside: Path) -> set[Path]:
    return {p for p in root.rglob("*") if not p.is_relative_to(inside)}


def job_count(settings: Settings) -> int:
    engine = make_engine(settings.db_url)
    with make_session_factory(engine)() as session:
        count = session.scalar(select(func.count()).select_from(JobRow))
    engine.dispose()
    return count or 0


SPLIT_FIELDS = [
    ("eval", {"split": TRAVERSAL}, "spec.split"),
    ("mine", {"split": TRAVERSAL}, "spec.split"),
    ("finetune", {"train_split": TRAVERSAL}, "spec.train_split"),
    ("finetune", {"val_split": TRAVERSAL}, "spec.val_split"),
    ("nudge", {"train_split": TRAVERSAL}, "spec.train_split"),
    ("nudge", {"val_split": TRAVERSAL}, "spec.val_split"),
    ("nudge", {"test_split": TRAVERSAL}, "spec.test_split"),
    ("compare", {"train_split": TRAVERSAL}, "spec.train_split"),
    ("compare", {"test_split": TRAVERSAL}, "spec.test_split"),
    ("compare", {"forgetting_split": TRAVERSAL}, "spec.forgetting_split"),
]


def job_body(kind: str, dataset_id: str, **fields: object) -> dict:
    model = "base_model" if kind in ("finetune", "compare") else "model"
    return {"type": kind, "spec": {"dataset_id": dataset_id, model: MINILM, **fields}}


def test_no_name_bearing_field_writes_outside_the_data_dir(
    api: TestClient, backend: Settings, uploaded: str, tmp_path: Path
) -> None:
    before = files_outside(tmp_path, backend.data_dir)
    pairs = [("files", ("pairs.jsonl", b'{"query": "q", "positive": "p"}\n'))]
    for form in ({"split": TRAVERSAL}, {"name": TRAVERSAL}, {"split": "a/b"}, {"name": ".."}):
        response = api.post("/v1/datasets", files=pairs, data=form)
        assert response.status_code == 422, (form, response.text)
        assert response.json()["error"]["param"] == next(iter(form))
    for filename in (f"{TRAVERSAL}.jsonl", "qrels/../../x.tsv", "/abs.jsonl", "a\\..\\b"):
        response = api.post("/v1/datasets", files=[("files", (filename, b"{}\n"))])
        assert response.status_code == 422, (filename, response.text)
        assert response.json()["error"]["code"] == "unsafe_path"
    for kind, fields, param in SPLIT_FIELDS:
        response = api.post("/v1/jobs", json=job_body(kind, uploaded, **fields))
        assert response.status_code == 422, (kind, fields, response.text)
        assert response.json()["error"]["param"] == param
    assert api.get("/v1/datasets").json()["total"] == 1
    assert job_count(backend) == 0
    assert files_outside(tmp_path, backend.data_dir) == before


HOSTILE_JOBS = [
    ('"split": "\\ud800"', "spec.split"),
    ('"split": "te\\u0000st"', "spec.split"),
    ('"query_instruction": "q\\u0000"', "spec.query_instruction"),
    ('"split": "' + "s" * 10_000_000 + '"', "spec.split"),
]


@pytest.mark.parametrize(("field", "param"), HOSTILE_JOBS, ids=["surrogate", "nul", "nul2", "10MB"])
def test_unstorable_strings_are_refused_before_anything_is_stored(
    api: TestClient, backend: Settings, uploaded: str, field: str, param: str
) -> None:
    body = (
        f'{{"type": "eval", "spec": {{"dataset_id": "{uploaded}", "model": "{MINILM}", {field}}}}}'
    )
    response = api.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text[:300]
    assert response.json()["error"]["param"] == param
    assert len(response.content) < 2000  # the value is not echoed back whole
    listing = api.get("/v1/jobs")
    assert listing.status_code == 200 and listing.json()["total"] == 0
    assert job_count(backend) == 0


@pytest.mark.parametrize(
    ("kind", "spec", "param"),
    [
        ("nudge", '"model": "m", "steps": [0.1, NaN]', "spec.steps.1"),
        ("nudge", '"model": "m", "steps": [Infinity]', "spec.steps.0"),
        ("finetune", '"base_model": "m", "params": {"epochs": Infinity}', "spec.params.epochs"),
        ("finetune", '"base_model": "m", "params": {"epochs": 1e308}', "epochs"),
        (
            "finetune",
            '"base_model": "m", "params": {"learning_rate": NaN}',
            "spec.params.learning_rate",
        ),
        ("finetune", '"base_model": "m", "params": {"seed": 1e400}', "spec.params.seed"),
        ("finetune", '"base_model": "m", "params": {"seed": 100000000000000000000}', "seed"),
        ("mine", '"model": "m", "options": {"range_max": 1e12}', "range_max"),
        (
            "mine",
            '"model": "m", "options": {"relative_margin": NaN}',
            "spec.options.relative_margin",
        ),
        ("finetune", '"base_model": "m", "val_fraction": NaN', "spec.val_fraction"),
    ],
)
def test_numbers_must_be_finite_and_in_range(
    api: TestClient, backend: Settings, uploaded: str, kind: str, spec: str, param: str
) -> None:
    spec = spec.replace('"m"', f'"{MINILM}"')
    body = f'{{"type": "{kind}", "spec": {{"dataset_id": "{uploaded}", {spec}}}}}'
    response = api.post("/v1/jobs", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"]["param"] == param
    assert api.get("/v1/jobs").json()["total"] == 0


def test_deeply_nested_records_are_a_422_with_the_line(api: TestClient) -> None:
    nested = "[" * 5000 + "]" * 5000
    rows = (
        '{"query": "q", "positive": "p"}\n' + f'{{"query": "q2", "positive": "p", "x": {nested}}}\n'
    )
    response = api.post("/v1/datasets", files=[("files", ("pairs.jsonl", rows.encode()))])
    assert response.status_code == 422, response.text[:300]
    issue = response.json()["error"]["issues"][0]
    assert (issue["code"], issue["file"], issue["line"]) == ("too_deep", "pairs.jsonl", 2)
    assert api.get("/v1/datasets").json()["total"] == 0


def test_model_references_never_resolve_against_the_working_directory(
    api: TestClient,
    backend: Settings,
    uploaded: str,
    tiny_model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cwd = tmp_path / "cwd"
    shutil.copytree(tiny_model_dir, cwd / "planted")
    shutil.copytree(tiny_model_dir, cwd / "var" / "jobs" / "job_x" / "model")
    (cwd / "linked").symlink_to(tiny_model_dir)
    monkeypatch.chdir(cwd)
    for ref in ("planted", "linked", "var/jobs/job_x/model", "."):
        job = api.post(
            "/v1/jobs", json={"type": "eval", "spec": {"dataset_id": uploaded, "model": ref}}
        )
        assert job.status_code in (404, 422), (ref, job.text)
        served = api.post("/v1/embeddings", json={"model": ref, "input": "hello"})
        assert served.status_code in (404, 422), (ref, served.text)
        lengths = api.post("/v1/datasets", files=beir_files(), data={"model": ref})
        assert lengths.status_code in (404, 422), (ref, lengths.text)
        for response in (job, served, lengths):
            assert response.json()["error"]["param"] == "model"
            assert str(tmp_path) not in response.text and os.getcwd() not in response.text
    assert job_count(backend) == 0


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_broker_failure_after_the_commit_keeps_one_job_behind_the_key(
    backend: Settings, tmp_path: Path
) -> None:
    backend = backend.model_copy(update={"broker_url": f"redis://127.0.0.1:{closed_port()}/0"})
    headers = {"Authorization": f"Bearer {create_key(backend, 'user')}"}
    with TestClient(create_app(backend), headers=headers) as api:
        dataset_id = api.post("/v1/datasets", files=beir_files()).json()["id"]
        job = {"type": "eval", "spec": {"dataset_id": dataset_id, "model": MINILM}}
        first = api.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k"})
        assert first.status_code == 503, first.text
        error = first.json()["error"]
        assert error["code"] == "enqueue_failed"
        job_id = error["job"]["id"]
        assert first.headers["location"] == f"/v1/jobs/{job_id}"
        assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "queued"
        again = api.post("/v1/jobs", json=job, headers={"Idempotency-Key": "k"})
        assert again.status_code == 202 and again.json()["id"] == job_id
    assert job_count(backend) == 1


def test_a_dead_requests_reservation_and_staged_upload_expire(
    api: TestClient, backend: Settings, uploaded: str
) -> None:
    key_id = api.headers["authorization"].split("_")[1]
    factory = make_session_factory(make_engine(backend.db_url))
    old = utcnow() - timedelta(seconds=backend.idempotency_pending_seconds + 5)
    with transaction(factory) as session:
        for key, at in (("dead", old), ("alive", utcnow())):
            row = IdempotencyRow(owner=key_id, key=key, request_hash="x", status_code=0)
            row.created_at = at
            session.add(row)
    job = {"type": "eval", "spec": {"dataset_id": uploaded, "model": MINILM}}
    assert api.post("/v1/jobs", json=job, headers={"Idempotency-Key": "alive"}).status_code == 409
    taken = api.post("/v1/jobs", json=job, headers={"Idempotency-Key": "dead"})
    assert taken.status_code == 202, taken.text
    replay = api.post("/v1/jobs", json=job, headers={"Idempotency-Key": "dead"})
    assert replay.json()["id"] == taken.json()["id"]

    staged = backend.data_dir / "uploads"
    for name, age in (("dead", backend.upload_stale_seconds + 60), ("live", 0)):
        (staged / name).mkdir(parents=True)
        (staged / name / "corpus.jsonl").write_text("{}\n")
        moment = time.time() - age
        for path in (staged / name / "corpus.jsonl", staged / name):
            os.utime(path, (moment, moment))
    expired = backend.model_copy(update={"idempotency_pending_seconds": 0.0})
    time.sleep(0.01)
    done = reconcile(factory, expired, enqueue=lambda *_: None, broker_job_ids=lambda: None)
    assert done.removed_uploads == ["dead"]
    assert sorted(p.name for p in staged.iterdir()) == ["live"]
    assert done.expired_keys == 1  # "alive" was still pending; the answered "dead" stays
    with factory() as session:
        keys = session.scalars(select(IdempotencyRow.key)).all()
    assert keys == ["dead"]

"""/v1/datasets through HTTP: uploads in every shape, validation errors, listing, deletion."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from core.services import datasets as catalog
from core.settings import Settings
from tests.api.conftest import beir_files
from tests.conftest import REDIS, create_key


def test_an_upload_being_validated_does_not_stall_other_requests(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
):
    """Validation runs off the event loop: /healthz answers while an upload is held in it."""
    entered, release = threading.Event(), threading.Event()
    register = catalog.register_dataset

    def held(*args, **kwargs):
        entered.set()
        release.wait(60)
        return register(*args, **kwargs)

    monkeypatch.setattr(catalog, "register_dataset", held)
    with ThreadPoolExecutor(2) as pool:
        upload = pool.submit(client.post, "/v1/datasets", files=beir_files(), data={"name": "h"})
        try:
            assert entered.wait(30)
            assert pool.submit(client.get, "/healthz").result(timeout=20).status_code == 200
        finally:
            release.set()
        assert upload.result(timeout=60).status_code == 201


def test_upload_beir_files_is_validated_and_described(client: TestClient, settings: Settings):
    response = client.post("/v1/datasets", files=beir_files(), data={"name": "mini"})
    assert response.status_code == 201
    body = response.json()
    assert response.headers["location"] == f"/v1/datasets/{body['id']}"
    assert (body["name"], body["format"]) == ("mini", "beir")
    assert (
        body["stats"]["documents"] == 6 and body["stats"]["splits"]["test"]["judged_queries"] == 3
    )
    assert len(body["checksum"]) == 64 and body["size_bytes"] > 0
    stored = settings.datasets_dir / body["id"]
    assert (stored / "qrels" / "test.tsv").is_file()
    assert client.get(f"/v1/datasets/{body['id']}").json() == body


def test_upload_rag_json_file_with_split(client: TestClient) -> None:
    data = {
        "queries": {"q1": "what is x"},
        "corpus": {"d1": "x is a letter", "d2": "y"},
        "relevant_docs": {"q1": ["d1"]},
    }
    response = client.post(
        "/v1/datasets",
        data={"split": "test"},
        files=[("files", ("qa.json", json.dumps(data).encode()))],
    )
    assert response.status_code == 201, response.text
    assert (response.json()["format"], response.json()["split"]) == ("rag-json", "test")
    assert response.json()["stats"]["splits"]["test"]["judged_queries"] == 1


def test_upload_zip_and_tar_archives(client: TestClient) -> None:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as zf:
        for _, (name, body) in beir_files():
            zf.writestr(f"mini/{name}", body)
    response = client.post("/v1/datasets", files=[("files", ("mini.zip", zipped.getvalue()))])
    assert response.status_code == 201, response.text
    assert response.json()["stats"]["documents"] == 6

    tarred = io.BytesIO()
    with tarfile.open(fileobj=tarred, mode="w:gz") as tf:
        for _, (name, body) in beir_files(4):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tf.addfile(info, io.BytesIO(body))
    response = client.post("/v1/datasets", files=[("files", ("d.tar.gz", tarred.getvalue()))])
    assert response.status_code == 201, response.text
    assert response.json()["stats"]["documents"] == 4


def test_bad_data_is_a_422_naming_file_line_and_field(client: TestClient, settings: Settings):
    files = beir_files()
    files[2] = (
        "files",
        ("qrels/test.tsv", b"query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\tnope\t1\n"),
    )
    response = client.post("/v1/datasets", files=files)
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("unknown_doc_id", "corpus-id")
    issue = error["issues"][0]
    assert (issue["file"], issue["line"], issue["field"]) == ("qrels/test.tsv", 3, "corpus-id")
    assert client.get("/v1/datasets").json()["total"] == 0
    assert not any((settings.data_dir / "uploads").iterdir())  # nothing left behind


def test_unsafe_names_and_oversize_uploads_are_refused(
    client: TestClient, tmp_path: Path, pg_url: str, broker_prefix: str
) -> None:
    response = client.post("/v1/datasets", files=[("files", ("../escape.json", b"{}"))])
    assert response.status_code == 422 and response.json()["error"]["code"] == "unsafe_path"
    small = Settings(
        data_dir=tmp_path / "small",
        database_url=pg_url,
        broker_url=REDIS,
        broker_prefix=broker_prefix,
        max_upload_bytes=100,
    )
    from api.main import create_app

    headers = {"Authorization": f"Bearer {create_key(small)}"}
    with TestClient(create_app(small), headers=headers) as limited:
        response = limited.post("/v1/datasets", files=beir_files())
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_large"

        def chunked():  # no Content-Length: the cap applies while the body streams
            yield b"--x\r\nContent-Disposition: form-data; name=files; filename=a.jsonl\r\n\r\n"
            for _ in range(10):
                yield b"y" * 50

        response = limited.post(
            "/v1/datasets",
            content=chunked(),
            headers={"content-type": "multipart/form-data; boundary=x"},
        )
        assert response.status_code == 413


def test_zip_bomb_is_refused(client: TestClient, settings: Settings) -> None:
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("corpus.jsonl", b"\n" * (50 << 20))
    response = client.post("/v1/datasets", files=[("files", ("bomb.zip", bomb.getvalue()))])
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["param"]) == ("too_large", "files")
    assert "expands to 52428800 bytes" in error["message"]
    assert client.get("/v1/datasets").json()["total"] == 0
    staged = settings.data_dir / "uploads"
    assert not staged.exists() or not any(staged.iterdir())  # nothing extracted is left


def test_list_is_paginated_newest_first(client: TestClient) -> None:
    ids = [
        client.post("/v1/datasets", files=beir_files(), data={"name": f"n{i}"}).json()["id"]
        for i in range(3)
    ]
    page = client.get("/v1/datasets", params={"limit": 2, "offset": 0}).json()
    assert page["total"] == 3 and [d["id"] for d in page["items"]] == ids[::-1][:2]
    rest = client.get("/v1/datasets", params={"limit": 2, "offset": 2}).json()
    assert [d["id"] for d in rest["items"]] == ids[:1]
    assert client.get("/v1/datasets", params={"limit": 0}).status_code == 422


def test_missing_dataset_is_404(client: TestClient) -> None:
    for method in ("get", "delete"):
        response = getattr(client, method)("/v1/datasets/ds_missing")
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "dataset_not_found"


def test_delete_removes_row_and_files_but_not_while_a_job_uses_it(
    client: TestClient, settings: Settings, dataset_id: str, pg_url: str
) -> None:
    job = client.post(
        "/v1/jobs",
        json={
            "type": "eval",
            "spec": {"dataset_id": dataset_id, "model": "sentence-transformers/all-MiniLM-L6-v2"},
        },
    )
    assert job.status_code == 202
    response = client.delete(f"/v1/datasets/{dataset_id}")
    assert response.status_code == 409 and response.json()["error"]["code"] == "dataset_in_use"
    assert (settings.datasets_dir / dataset_id).is_dir()

    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE jobs SET status = 'succeeded'"))
    engine.dispose()
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert not (settings.datasets_dir / dataset_id).exists()
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    # The finished job stays readable, its dataset link cleared.
    assert client.get(f"/v1/jobs/{job.json()['id']}").json()["dataset_id"] is None


def test_a_deleted_datasets_files_go_only_once_the_delete_is_committed(
    factory, settings: Settings, sample_id: str
) -> None:
    from core.services.datasets import delete_dataset
    from core.store.db import transaction

    folder = settings.datasets_dir / sample_id
    with pytest.raises(RuntimeError), transaction(factory) as session:
        delete_dataset(session, settings=settings, dataset_id=sample_id)
        raise RuntimeError("the transaction fails after the delete")
    assert folder.is_dir()  # rolled back: the row and its files are both still there
    with transaction(factory) as session:
        delete_dataset(session, settings=settings, dataset_id=sample_id)
        assert folder.is_dir()  # not before the commit
    assert not folder.exists()

"""An app on real Postgres and Redis, driven through HTTP with a test client."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.settings import Settings
from tests.conftest import create_key


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """A client with an admin key."""
    headers = {"Authorization": f"Bearer {create_key(settings)}"}
    with TestClient(create_app(settings), headers=headers) as test_client:
        yield test_client


def beir_files(n_docs: int = 6) -> list[tuple[str, tuple[str, bytes]]]:
    """A small BEIR dataset as multipart parts (names keep their folders)."""
    corpus = "".join(
        json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"document {i} about topic {i % 3}"})
        + "\n"
        for i in range(n_docs)
    )
    queries = "".join(json.dumps({"_id": f"q{i}", "text": f"topic {i}"}) + "\n" for i in range(3))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(3))
    parts = {
        "corpus.jsonl": corpus,
        "queries.jsonl": queries,
        "qrels/test.tsv": qrels,
        "qrels/train.tsv": qrels,
    }
    return [("files", (name, body.encode())) for name, body in parts.items()]


@pytest.fixture
def dataset_id(client: TestClient) -> str:
    response = client.post("/v1/datasets", files=beir_files(), data={"name": "mini"})
    assert response.status_code == 201, response.text
    return response.json()["id"]

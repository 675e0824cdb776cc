"""POST /v1/indexes/{id}/search over an index built by a real ``index`` job."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.jobs.kinds.index import IndexJob
from core.jobs.runner import run_job
from core.jobs.service import submit_job
from core.models.config import ModelConfig
from core.models.embedder import load_embedder
from core.settings import Settings
from core.store.db import make_engine, make_session_factory
from core.store.tables import JobRow

DOCS = {f"d{i}": f"T{i} document {i} about topic {i % 3}" for i in range(6)}  # beir_files()


@pytest.fixture
def model_dir(settings: Settings, tiny_model_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, settings.models_dir / "tiny"))


@pytest.fixture
def index_id(settings: Settings, dataset_id: str, model_dir: Path) -> str:
    """An index job run to completion in this process, with its own query instruction."""
    factory = make_session_factory(make_engine(settings.db_url))
    spec = {"dataset_id": dataset_id, "model": "tiny", "kind": "flat", "query_instruction": "q: "}
    job = submit_job(
        factory,
        IndexJob(type="index", spec=spec),
        enqueue=lambda *_: None,
        models_dir=settings.models_dir,
    )
    assert (
        run_job(job.id, factory=factory, settings=settings, worker="test", enqueue=lambda *_: None)
        == "succeeded"
    )
    with factory() as session:
        return session.get(JobRow, job.id).result["index_id"]


def search(client: TestClient, index_id: str, **body: object) -> dict:
    response = client.post(f"/v1/indexes/{index_id}/search", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def expected_ranking(model_dir: Path, query: str) -> list[tuple[str, float]]:
    """Brute force in process: the job's query instruction, documents as the job encoded them."""
    embedder = load_embedder(str(model_dir), query_instruction="q: ")
    docs = embedder.encode(list(DOCS.values()), "document")
    scores = docs @ embedder.encode([query], "query")[0]
    return sorted(zip(DOCS, scores.tolist(), strict=True), key=lambda p: -p[1])


def test_search_returns_ranked_documents_with_text(
    client: TestClient, index_id: str, model_dir: Path
) -> None:
    body = search(client, index_id, query="topic 1", top_k=3)
    assert body["index_id"] == index_id and body["model"] == "tiny"
    (result,) = body["results"]
    assert result["query"] == "topic 1"
    want = expected_ranking(model_dir, "topic 1")[:3]
    assert [d["id"] for d in result["documents"]] == [doc_id for doc_id, _ in want]
    np.testing.assert_allclose(
        [d["score"] for d in result["documents"]], [s for _, s in want], atol=1e-5
    )
    first = result["documents"][0]
    assert f"{first['title']} {first['text']}" == DOCS[first["id"]]
    assert body["usage"]["prompt_tokens"] > 0


def test_several_queries_answer_in_order_and_top_k_is_capped(
    client: TestClient, index_id: str
) -> None:
    queries = ["topic 0", "document 5", "topic 2"]
    body = search(client, index_id, queries=queries, top_k=50)
    assert [r["query"] for r in body["results"]] == queries
    assert all(len(r["documents"]) == len(DOCS) for r in body["results"])
    for query, result in zip(queries, body["results"], strict=True):
        assert result == search(client, index_id, query=query, top_k=50)["results"][0]


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": "a", "queries": ["b"]},
        {"query": "a", "top_k": 0},
        {"queries": []},
        {"query": ""},
    ],
)
def test_bad_search_bodies_are_422(client: TestClient, index_id: str, body: dict) -> None:
    response = client.post(f"/v1/indexes/{index_id}/search", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_unknown_or_malformed_index_id(client: TestClient) -> None:
    response = client.post("/v1/indexes/idx_nope/search", json={"query": "a"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "index_not_found"
    response = client.post("/v1/indexes/a%00b/search", json={"query": "a"})
    assert response.status_code == 422 and response.json()["error"]["param"] == "index_id"


def test_index_of_a_changed_model_is_refused(
    client: TestClient, index_id: str, model_dir: Path
) -> None:
    ModelConfig(query_instruction="something else: ").save(model_dir)  # new fingerprint
    response = client.post(f"/v1/indexes/{index_id}/search", json={"query": "a"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "index_model_changed"

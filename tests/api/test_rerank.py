"""/v1/rerank through HTTP: scores, order, top_n, documents, limits, errors, projects; and the
real ``cohere`` client against a real uvicorn server."""

from __future__ import annotations

import shutil
from pathlib import Path

import cohere
import numpy as np
import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.reranking.reranker import load_reranker
from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import ModelRow
from tests.api.test_embeddings import error
from tests.api.test_jobs import MINILM, queued_messages
from tests.api.test_openai_contract import server  # noqa: F401  (the uvicorn fixture)
from tests.conftest import create_key

QUERY = "vitamin d and bone density"
DOCS = ["bone density in adults taking vitamin d", "protein folding in yeast", "a short one"]


@pytest.fixture
def reranker(settings: Settings, tiny_reranker_dir: Path) -> str:
    """The tiny reranker under the models directory, where clients may name it."""
    shutil.copytree(tiny_reranker_dir, settings.models_dir / "tiny-reranker")
    return "tiny-reranker"


def rerank(client: TestClient, **body: object) -> dict:
    response = client.post("/v1/rerank", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_scores_match_the_cross_encoder_best_first(
    client: TestClient, settings: Settings, reranker: str
) -> None:
    body = rerank(client, model=reranker, query=QUERY, documents=DOCS)
    assert body["model"] == reranker and body["object"] == "rerank" and body["id"]
    expected = load_reranker(str(settings.models_dir / reranker)).score([(QUERY, d) for d in DOCS])
    got = {r["index"]: r["relevance_score"] for r in body["results"]}
    np.testing.assert_allclose([got[i] for i in range(3)], expected, atol=1e-5)
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert all("document" not in r for r in body["results"])
    assert body["usage"]["total_tokens"] > len(DOCS)
    assert list((settings.data_dir / "cache" / "onnx").glob("rerank-*.onnx"))  # ONNX Runtime


def test_top_n_documents_as_objects_and_returned_documents(
    client: TestClient, reranker: str
) -> None:
    full = rerank(client, model=reranker, query=QUERY, documents=DOCS)
    objects = [{"text": d} for d in DOCS]
    body = rerank(
        client, model=reranker, query=QUERY, documents=objects, top_n=2, return_documents=True
    )
    assert [r["index"] for r in body["results"]] == [r["index"] for r in full["results"][:2]]
    assert [r["document"]["text"] for r in body["results"]] == [
        DOCS[r["index"]] for r in body["results"]
    ]


def test_a_fine_tuned_reranker_id_is_served_and_other_projects_get_404(
    client: TestClient, settings: Settings, tiny_reranker_dir: Path
) -> None:
    model_dir = settings.models_dir / "job-out"
    shutil.copytree(tiny_reranker_dir, model_dir)
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = repos.upsert_by_job(
            session, ModelRow, job_id=None, reference="", kind="reranker", path=str(model_dir)
        )
        model_id = row.id
    assert len(rerank(client, model=model_id, query=QUERY, documents=DOCS)["results"]) == 3
    other = client.post("/v1/projects", json={"name": "other"}).json()["id"]
    headers = {"Authorization": f"Bearer {create_key(settings, 'inference', other)}"}
    answer = client.post(
        "/v1/rerank", json={"model": model_id, "query": QUERY, "documents": DOCS}, headers=headers
    )
    assert error(answer, 404)["code"] == "model_not_found"


def req(**changes: object) -> dict:
    return {"model": "tiny-reranker", "query": "q", "documents": ["d"], **changes}


@pytest.mark.parametrize(
    ("body", "status", "code", "param"),
    [
        (req(model="no-such-model"), 404, "model_not_found", "model"),
        (req(documents=[]), 422, "invalid_request", "documents"),
        (req(query=""), 422, "invalid_request", "query"),
        (req(documents=[{"t": 1}]), 422, "invalid_request", "documents"),
        (req(top_n=0), 422, "invalid_request", "top_n"),
        (req(model="/etc"), 422, "invalid_model", "model"),
        (req(model="tiny"), 422, "not_a_reranker", "model"),
    ],
)
def test_client_mistakes_get_the_embeddings_error_table(
    client: TestClient,
    settings: Settings,
    reranker: str,
    tiny_model_dir: Path,
    body: dict,
    status: int,
    code: str,
    param: str,
) -> None:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")  # an embedder, not a reranker
    err = error(client.post("/v1/rerank", json=body), status)
    assert err["code"] == code
    assert err["param"].split(".")[0].split("[")[0] == param


def test_limits_and_truncation(settings: Settings, reranker: str) -> None:
    limited = settings.model_copy(update={"serve_max_inputs": 4})
    headers = {"Authorization": f"Bearer {create_key(limited, 'inference')}"}
    with TestClient(create_app(limited), headers=headers) as client:
        many = client.post(
            "/v1/rerank", json={"model": reranker, "query": "q", "documents": ["d"] * 5}
        )
        assert error(many, 413)["code"] == "too_many_inputs"
        long = " ".join(["protein"] * 300)
        body = {"model": reranker, "query": "q", "documents": ["d", long], "truncate": False}
        refused = error(client.post("/v1/rerank", json=body), 413)
        assert refused["code"] == "input_too_long" and refused["param"] == "documents[1]"
        assert len(rerank(client, **{**body, "truncate": True})["results"]) == 2
    assert TestClient(create_app(settings)).post("/v1/rerank", json=body).status_code == 401


def test_the_cohere_client_reranks(server: str, settings: Settings, reranker: str) -> None:  # noqa: F811
    client = cohere.Client(
        api_key=create_key(settings, "inference"), base_url=server.removesuffix("/v1")
    )
    answer = client.rerank(
        model=reranker, query=QUERY, documents=DOCS, top_n=2, return_documents=True
    )
    assert len(answer.results) == 2
    assert answer.results[0].relevance_score >= answer.results[1].relevance_score
    best = answer.results[0]
    expected = load_reranker(str(settings.models_dir / reranker)).score([(QUERY, DOCS[best.index])])
    assert best.relevance_score == pytest.approx(float(expected[0]), abs=1e-5)
    assert best.document is not None and best.document.text == DOCS[best.index]


def test_reranker_jobs_are_submitted_or_refused_with_code_and_param(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    before = queued_messages(settings, "gpu")
    spec = {"dataset_id": dataset_id, "base_model": MINILM, "params": {"loss": "lambda"}}
    accepted = client.post("/v1/jobs", json={"type": "rerank_finetune", "spec": spec})
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["status"] == "queued" and queued_messages(settings, "gpu") == before + 1
    cases = [
        ({**spec, "params": {"loss": "pointwise"}}, 422, "invalid_request", "spec.params.loss"),
        ({**spec, "params": {"candidates": 0}}, 422, "invalid_input", "candidates"),
        ({**spec, "teacher_model": "no-such-model"}, 404, "model_not_found", "model"),
        ({**spec, "val_split": "dev"}, 422, "no_split", "spec"),
    ]
    for body, status, code, param in cases:
        answer = client.post("/v1/jobs", json={"type": "rerank_finetune", "spec": body})
        err = error(answer, status)
        assert (err["code"], err["param"]) == (code, param), err
    evaluation = {"dataset_id": dataset_id, "model": MINILM, "reranker": "no-such-reranker"}
    answer = client.post("/v1/jobs", json={"type": "eval", "spec": evaluation})
    assert error(answer, 404)["code"] == "model_not_found"

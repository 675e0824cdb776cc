"""ColBERT through HTTP: token vectors from /v1/embeddings (``"output": "multi_vector"``),
MaxSim pair scores from /v1/scores, and /v1/indexes/{id}/search over a token index that a real
``index`` job built (refused over the memory budget)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from sentence_transformers.multi_vector_encoder import maxsim, maxsim_pairwise

from core.jobs.kinds.index import IndexJob
from core.jobs.runner import run_job
from core.jobs.service import submit_job
from core.models.embedder import load_embedder
from core.settings import Settings
from core.store.db import make_engine, make_session_factory
from core.store.tables import JobRow
from tests.api.test_search import DOCS

TEXTS = ["protein folding in yeast", "vitamin D and bone density in adults"]


@pytest.fixture
def colbert(settings: Settings, tiny_colbert_dir: Path, tiny_model_dir: Path) -> Path:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    return Path(shutil.copytree(tiny_colbert_dir, settings.models_dir / "tiny-colbert"))


def run_index(settings: Settings, dataset_id: str, **spec: object) -> JobRow:
    factory = make_session_factory(make_engine(settings.db_url))
    job = submit_job(
        factory,
        IndexJob(type="index", spec={"dataset_id": dataset_id, "model": "tiny-colbert", **spec}),
        enqueue=lambda *_: None,
        models_dir=settings.models_dir,
    )
    run_job(job.id, factory=factory, settings=settings, worker="test", enqueue=lambda *_: None)
    with factory() as session:
        return session.get(JobRow, job.id)


def test_multi_vector_output_gives_each_texts_token_vectors(
    client: TestClient, colbert: Path
) -> None:
    response = client.post(
        "/v1/embeddings",
        json={"model": "tiny-colbert", "input": TEXTS, "output": "multi_vector"},
    )
    assert response.status_code == 200, response.text
    data = sorted(response.json()["data"], key=lambda d: d["index"])
    want = load_embedder(str(colbert)).encode_tokens(TEXTS, "document")
    for item, expected in zip(data, want, strict=True):
        np.testing.assert_allclose(np.array(item["embedding"]), expected, atol=1e-5)
    assert response.json()["usage"]["prompt_tokens"] >= sum(len(w) for w in want)
    query = client.post(
        "/v1/embeddings",
        json={
            "model": "tiny-colbert",
            "input": "yeast",
            "output": "multi_vector",
            "input_type": "query",
        },
    ).json()["data"][0]["embedding"]
    assert len(query) >= 16  # short queries are expanded to the query length


def test_wrong_output_for_the_model_and_bad_options_are_refused(
    client: TestClient, colbert: Path
) -> None:
    for body, code in (
        ({"model": "tiny-colbert"}, "multi_vector_model"),
        ({"model": "tiny", "output": "multi_vector"}, "not_multi_vector"),
    ):
        response = client.post("/v1/embeddings", json={"input": TEXTS, **body})
        assert response.status_code == 422, response.text
        assert response.json()["error"]["code"] == code
        assert response.json()["error"]["param"] == "output"
    response = client.post(
        "/v1/embeddings",
        json={"model": "tiny-colbert", "input": TEXTS, "output": "multi_vector", "dimensions": 8},
    )
    assert response.status_code == 422


def test_pair_scores_are_maxsim(client: TestClient, colbert: Path) -> None:
    pairs = [{"query": "yeast", "document": TEXTS[0]}, {"query": "yeast", "document": TEXTS[1]}]
    response = client.post("/v1/scores", json={"model": "tiny-colbert", "pairs": pairs})
    assert response.status_code == 200, response.text
    embedder = load_embedder(str(colbert))
    q = embedder.encode_tokens(["yeast", "yeast"], "query")
    d = embedder.encode_tokens(TEXTS, "document")
    want = maxsim_pairwise([torch.tensor(v) for v in q], [torch.tensor(v) for v in d])
    got = [s["score"] for s in response.json()["data"]]
    np.testing.assert_allclose(got, want.numpy(), atol=1e-4)


def test_token_index_search_ranks_by_maxsim(
    client: TestClient, settings: Settings, dataset_id: str, colbert: Path
) -> None:
    job = run_index(settings, dataset_id)
    assert job.status == "succeeded", job.error_message
    result = job.result
    assert result["kind"] == "maxsim" and result["size"] == len(DOCS) and result["dim"] == 128
    assert result["bytes_per_document"] == pytest.approx(result["bytes"] / len(DOCS), abs=0.1)
    assert result["bytes"] == result["tokens"] * 128 * 2 + (len(DOCS) + 1) * 8
    response = client.post(
        f"/v1/indexes/{result['index_id']}/search", json={"query": "topic 1", "top_k": 3}
    )
    assert response.status_code == 200, response.text
    hits = response.json()["results"][0]["documents"]
    embedder = load_embedder(str(colbert))
    docs = embedder.encode_tokens(list(DOCS.values()), "document")
    scores = maxsim(
        [torch.tensor(v) for v in embedder.encode_tokens(["topic 1"], "query")],
        [torch.tensor(v) for v in docs],
    )[0].numpy()
    order = np.argsort(-scores)[:3]
    assert [h["id"] for h in hits] == [list(DOCS)[i] for i in order]
    np.testing.assert_allclose([h["score"] for h in hits], scores[order], atol=2e-2)  # float16


def test_index_kind_and_memory_budget_are_enforced(
    client: TestClient, settings: Settings, dataset_id: str, colbert: Path
) -> None:
    response = client.post(
        "/v1/jobs",
        json={
            "type": "index",
            "spec": {"dataset_id": dataset_id, "model": "tiny-colbert", "kind": "hnsw"},
        },
    )
    assert response.status_code == 422 and response.json()["error"]["code"] == "invalid_index_kind"
    small = settings.model_copy(update={"late_index_memory_mb": 0})
    job = run_index(small, dataset_id)
    assert (job.status, job.error_code) == ("failed", "index_too_large")
    assert "bytes per document" in job.error_message

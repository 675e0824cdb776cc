"""A remote embeddings API as a model: ``remote:<name>`` pointed at EmbedTune's own
/v1/embeddings under uvicorn on loopback, scored as the local model is, batched, cached."""

from __future__ import annotations

import json

import numpy as np
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from core.datasets.model import Document, Query, RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, evaluate
from core.models.cache import EmbeddingCache
from core.services.models import embedder_for
from core.settings import Settings
from tests.api.test_openai_contract import BASE, server  # noqa: F401 (the uvicorn fixture)
from tests.conftest import create_key

TOPICS = ["insulin", "malaria", "vaccines", "statins", "asthma", "sepsis"]


def small_dataset() -> RetrievalDataset:
    corpus = {
        f"d{i}": Document(f"d{i}", f"{TOPICS[i % 6]} study {i}: outcomes in {i * 3} patients")
        for i in range(24)
    }
    queries = {f"q{i}": Query(f"q{i}", f"what did the {TOPICS[i]} study find") for i in range(6)}
    qrels = {"test": {f"q{i}": {f"d{i}": 1, f"d{i + 6}": 1} for i in range(6)}}
    return RetrievalDataset(corpus, queries, qrels, name="small")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test settings, serving with PyTorch (no ONNX export: a faster start)."""
    return settings.model_copy(update={"serve_onnx": False})


@pytest.fixture
def remote_settings(settings: Settings, server: str) -> Settings:  # noqa: F811
    return settings.model_copy(
        update={
            "embeddings_api_base_url": server,
            "embeddings_api_key": SecretStr(create_key(settings, "inference")),
            "embeddings_api_batch_size": 5,
        }
    )


def test_a_remote_model_scores_as_the_local_one_in_batches_and_from_the_cache(
    remote_settings: Settings, tmp_path
) -> None:
    ds = small_dataset()
    remote = embedder_for(remote_settings, f"remote:{BASE}", allow_paths=False)
    local = embedder_for(remote_settings, BASE, allow_paths=False)
    texts = [d.text for d in ds.corpus.values()]
    vectors = remote.encode(texts, "document")
    assert remote.requests == 5  # 24 texts in batches of 5
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert np.allclose(vectors, local.encode(texts, "document"), atol=1e-4)
    cache = EmbeddingCache(tmp_path / "cache")
    scored = evaluate(ds, remote, EvalSpec(split="test"), cache=cache)
    expected = evaluate(ds, local, EvalSpec(split="test"))
    assert scored.metrics["ndcg@10"] == pytest.approx(expected.metrics["ndcg@10"], abs=1e-3)
    assert scored.model == f"remote:{BASE}"
    before = remote.requests
    again = evaluate(ds, remote, EvalSpec(split="test"), cache=cache)
    assert remote.requests == before  # everything came from the embedding cache
    assert again.metrics == scored.metrics
    key = remote_settings.embeddings_api_key.get_secret_value()
    assert key not in json.dumps(again.to_dict())
    assert key not in repr(remote.endpoint)


def test_remote_models_are_for_scoring_only_and_need_an_endpoint(
    client: TestClient, dataset_id: str, settings: Settings
) -> None:
    ok = client.post(
        "/v1/jobs",
        json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": f"remote:{BASE}"}},
    )
    assert ok.status_code == 202, ok.text
    baseline = client.post(
        "/v1/jobs",
        json={
            "type": "compare",
            "spec": {
                "dataset_id": dataset_id,
                "base_model": BASE,
                "methods": ["base"],
                "baselines": ["remote:text-embedding-3-small"],
            },
        },
    )
    assert baseline.status_code == 202, baseline.text
    children = client.get(f"/v1/jobs/{baseline.json()['id']}").json()["result"]["children"]
    assert [c["method"] for c in children] == ["base", "baseline:remote:text-embedding-3-small"]
    trained = client.post(
        "/v1/jobs",
        json={
            "type": "finetune",
            "spec": {"dataset_id": dataset_id, "base_model": "remote:text-embedding-3-small"},
        },
    )
    assert trained.status_code == 422
    assert trained.json()["error"]["code"] == "remote_model"
    bad = client.post(
        "/v1/jobs",
        json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": "remote:../x"}},
    )
    assert bad.status_code == 422 and bad.json()["error"]["param"] == "model"
    with pytest.raises(InvalidInput) as unconfigured:
        embedder_for(settings, "remote:text-embedding-3-small", allow_paths=False)
    assert unconfigured.value.code == "remote_not_configured"

"""ColBERT end to end: a real worker fine-tunes a late-interaction model from a plain encoder,
indexes the corpus as token vectors, evaluates with MaxSim, and the API serves it."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.e2e.conftest import wait_for
from tests.e2e.test_jobs_e2e import submit

pytestmark = pytest.mark.usefixtures("worker")


def test_colbert_finetune_index_eval_and_serving(
    api: TestClient, sample_id: str, tiny_ref: str, e2e_settings: Settings
) -> None:
    params = {"epochs": 0.25, "batch_size": 16, "max_seq_length": 32, "query_length": 16,
              "learning_rate": 1e-3, "logging_steps": 5}  # fmt: skip
    spec = {"dataset_id": sample_id, "base_model": tiny_ref, "method": "colbert", "params": params}
    # the sample: 2 test queries have a train query's text (docs/quality-loop.md)
    job_id = submit(api, "finetune", {**spec, "data_checks": "drop"})
    job, seen = wait_for(api, job_id, timeout=1200)
    assert job["status"] == "succeeded", job["error"]
    assert seen == sorted(seen) and seen[-1] == 100
    model_id = job["result"]["model_id"]
    model = api.get(f"/v1/models/{model_id}").json()
    assert model["job_id"] == job_id and 0 < model["metrics"]["after"]["ndcg@10"] <= 1
    series = api.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert len(series["loss"]) >= 2

    index, _ = wait_for(api, submit(api, "index", {"dataset_id": sample_id, "model": model_id}))
    assert index["status"] == "succeeded", index["error"]
    result = index["result"]
    assert (result["kind"], result["size"]) == ("maxsim", 2000)
    assert result["bytes"] == result["tokens"] * result["dim"] * 2 + 2001 * 8
    found = api.post(
        f"/v1/indexes/{result['index_id']}/search", json={"query": "vitamin d", "top_k": 5}
    )
    assert found.status_code == 200, found.text
    hits = found.json()["results"][0]["documents"]
    assert len(hits) == 5 and [h["score"] for h in hits] == sorted(
        (h["score"] for h in hits), reverse=True
    )

    spec = {"dataset_id": sample_id, "model": model_id, "split": "test"}
    evaluation, _ = wait_for(api, submit(api, "eval", spec), timeout=1200)
    assert evaluation["status"] == "succeeded", evaluation["error"]
    assert 0 < evaluation["result"]["metrics"]["ndcg@10"] <= 1
    assert evaluation["result"]["num_queries"] == 300
    assert (e2e_settings.jobs_dir / evaluation["id"] / evaluation["result"]["report"]).is_file()

    served = api.post(
        "/v1/embeddings",
        json={"model": model_id, "input": ["bone density"], "output": "multi_vector"},
    )
    assert served.status_code == 200, served.text
    vectors = served.json()["data"][0]["embedding"]
    assert len(vectors) >= 2 and len(vectors[0]) == result["dim"]
    pairs = [{"query": "vitamin d", "document": d} for d in ("bone density", "yeast")]
    scores = api.post("/v1/scores", json={"model": model_id, "pairs": pairs})
    assert scores.status_code == 200, scores.text
    assert len(scores.json()["data"]) == 2

"""A reranker end to end: a real worker fine-tunes it, an eval job reranks with it, and
/v1/rerank serves it by its model id."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.e2e.conftest import wait_for
from tests.e2e.test_jobs_e2e import submit

pytestmark = pytest.mark.usefixtures("worker")


def test_rerank_finetune_job_then_eval_and_serving(
    api: TestClient, sample_id: str, tiny_ref: str, e2e_settings: Settings
) -> None:
    params = {"epochs": 0.25, "batch_size": 16, "max_seq_length": 64, "num_negatives": 2,
              "candidates": 3, "learning_rate": 1e-3, "logging_steps": 5}  # fmt: skip
    spec = {"dataset_id": sample_id, "base_model": tiny_ref, "params": params}
    job_id = submit(api, "rerank_finetune", {**spec, "data_checks": "drop"})
    job, seen = wait_for(api, job_id, timeout=1200)  # the sample: 2,000 documents mined
    assert job["status"] == "succeeded", job["error"]
    assert seen == sorted(seen) and seen[-1] == 100
    model_id = job["result"]["model_id"]
    models = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    assert models[model_id]["kind"] == "reranker" and models[model_id]["job_id"] == job_id
    fusion = job["result"]["metrics"]["fusion"]
    assert fusion["fused"]["ndcg@10"] >= fusion["first_stage"]["ndcg@10"]
    series = api.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert len(series["loss"]) >= 2 and "eval_ndcg@10" in series

    spec = {"dataset_id": sample_id, "model": tiny_ref, "reranker": model_id, "rerank_top_k": 3}
    evaluation, _ = wait_for(api, submit(api, "eval", spec), timeout=1200)
    assert evaluation["status"] == "succeeded", evaluation["error"]
    rerank = evaluation["result"]["rerank"]
    assert set(rerank["metrics"]) == {"first_stage", "reranked", "fused"}
    assert rerank["weight_from"] == "validation split 'val'" and rerank["latency"]["mean_ms"] > 0
    assert ("did not help" in rerank["verdict"]) == (not rerank["helps"])
    assert (e2e_settings.jobs_dir / evaluation["id"] / rerank["report"]).is_file()

    body = {"model": model_id, "query": "vitamin d", "documents": ["bone density", "yeast"]}
    served = api.post("/v1/rerank", json=body)
    assert served.status_code == 200, served.text
    assert sorted(r["index"] for r in served.json()["results"]) == [0, 1]

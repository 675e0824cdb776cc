"""The quality loop on a real worker: a two-round adapter fine-tune, then a merge job that
waits for it and makes a model the embeddings endpoint serves."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import beir_files
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.usefixtures("worker")
QUICK = {"max_seq_length": 32, "adapter_epochs": 3, "rounds": 2}


def test_a_merge_job_waits_for_its_finetune_and_makes_a_served_model(
    api: TestClient, sample_id: str, tiny_ref: str
) -> None:
    other = api.post("/v1/datasets", files=beir_files(), data={"name": "other"}).json()["id"]
    tune = api.post(
        "/v1/jobs",
        json={
            "type": "finetune",
            "spec": {
                "dataset_id": sample_id,
                "base_model": tiny_ref,
                "method": "adapter",
                "params": QUICK,
                "data_checks": "drop",  # the sample: 2 test queries have a train query's text
            },
        },
    ).json()
    merge = api.post(
        "/v1/jobs",
        json={
            "type": "merge",
            "spec": {
                "dataset_id": sample_id,
                "base_model": tiny_ref,
                "models_from_jobs": [tune["id"]],
                "forgetting_dataset_id": other,
                "grid_step": 0.25,
                "data_checks": "drop",
            },
        },
    ).json()
    done, _ = wait_for(api, merge["id"], timeout=900)
    assert done["status"] == "succeeded", done["error"]
    tuned = api.get(f"/v1/jobs/{tune['id']}").json()
    assert done["started_at"] >= tuned["finished_at"]  # it waited, on no worker
    assert [r["round"] for r in tuned["result"]["rounds"]] == [1, 2]
    result = done["result"]
    assert result["merge"]["candidates"] == 5 and sum(result["merge"]["weights"]) == 1
    body = {"model": result["model_id"], "input": ["protein folding in yeast"]}
    served = api.post("/v1/embeddings", json=body)
    assert served.status_code == 200, served.text
    assert len(served.json()["data"][0]["embedding"]) == 32

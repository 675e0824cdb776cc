"""Jobs end to end: HTTP in, a real Celery worker process runs them, Postgres holds the outcome."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture(scope="module")
def base(tiny_ref: str) -> str:
    return tiny_ref


def submit(api: TestClient, type: str, spec: dict) -> str:
    response = api.post("/v1/jobs", json={"type": type, "spec": spec})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def test_eval_job_runs_to_succeeded_with_rising_progress(
    api: TestClient, sample_id: str, base: str, e2e_settings: Settings
) -> None:
    job_id = submit(api, "eval", {"dataset_id": sample_id, "model": base, "split": "test"})
    job, seen = wait_for(api, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert seen == sorted(seen) and seen[-1] == 100
    assert 0 < job["result"]["metrics"]["ndcg@10"] < 1 and job["result"]["num_queries"] == 300
    assert job["attempts"] == 1 and job["worker"]
    assert set(job["result"]["truncated"]) == {"documents", "queries"}  # cut at max_seq_length
    series = api.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert series["ndcg@10"][0]["value"] == pytest.approx(job["result"]["metrics"]["ndcg@10"])
    assert len([name for name in series if "@" in name]) == 30  # 6 metrics at 5 cut-offs
    assert series["corpus_encodes"][0]["value"] == job["result"]["encodes"]["corpus_encodes"]
    states = [
        e["message"] for e in api.get(f"/v1/jobs/{job_id}/events").json() if e["kind"] == "state"
    ]
    assert states == ["queued", "running", "succeeded"]
    # the result names the report in the job's artifacts, never a server path
    assert (e2e_settings.jobs_dir / job_id / job["result"]["report"]).is_file()
    assert str(e2e_settings.data_dir.resolve()) not in str(job["result"])


def test_index_and_mine_jobs_store_their_outputs(
    api: TestClient, sample_id: str, base: str
) -> None:
    index_job = submit(api, "index", {"dataset_id": sample_id, "model": base, "kind": "flat"})
    mine_job = submit(
        api,
        "mine",
        {
            "dataset_id": sample_id,
            "model": base,
            "split": "train",
            "options": {"num_negatives": 3, "relative_margin": None},
        },
    )
    job, _ = wait_for(api, index_job)
    assert job["status"] == "succeeded", job["error"]
    assert (job["result"]["size"], job["result"]["kind"]) == (2000, "flat")
    job, _ = wait_for(api, mine_job)
    assert job["status"] == "succeeded", job["error"]
    mined = api.get(f"/v1/datasets/{job['result']['dataset_id']}").json()
    assert mined["source_job_id"] == mine_job
    assert mined["stats"]["negatives"] > 0 and mined["stats"]["documents"] == 2000


def test_finetune_job_produces_a_listed_model_that_evaluates(
    api: TestClient, sample_id: str, base: str
) -> None:
    job_id = submit(
        api,
        "finetune",
        {
            "dataset_id": sample_id,
            "base_model": base,
            "method": "full",
            "params": {"epochs": 1, "batch_size": 32, "max_seq_length": 64, "logging_steps": 2},
            "data_checks": "drop",  # the sample: 2 test queries have a train query's text
        },
    )
    job, seen = wait_for(api, job_id)
    assert job["status"] == "succeeded", job["error"]
    assert seen == sorted(seen)
    model_id = job["result"]["model_id"]
    models = {m["id"]: m for m in api.get("/v1/models").json()["data"]}
    assert models[model_id]["kind"] == "finetuned" and models[model_id]["job_id"] == job_id
    assert "ndcg@10" in models[model_id]["metrics"]["after"]
    series = api.get(f"/v1/jobs/{job_id}/metrics").json()["series"]
    assert len(series["loss"]) >= 2 and "learning_rate" in series
    evaluation = submit(api, "eval", {"dataset_id": sample_id, "model": model_id})
    job, _ = wait_for(api, evaluation)
    assert job["status"] == "succeeded", job["error"]


def test_cancelling_a_running_finetune_ends_cancelled_within_seconds(
    api: TestClient, sample_id: str, base: str
) -> None:
    job_id = submit(
        api,
        "finetune",
        {
            "dataset_id": sample_id,
            "base_model": base,
            "method": "full",
            "params": {"epochs": 50, "batch_size": 16, "max_seq_length": 64},
            "data_checks": "drop",
        },
    )
    deadline = time.monotonic() + 300
    while api.get(f"/v1/jobs/{job_id}").json()["stage"] != "train":  # training steps began
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job, _ = wait_for(api, job_id, timeout=20)
    assert job["status"] == "cancelled"
    assert not any(m["job_id"] == job_id for m in api.get("/v1/models").json()["data"])

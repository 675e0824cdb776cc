"""The compare job end to end: a real worker runs it and its child jobs; cancel cascades."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from tests.api.conftest import beir_files
from tests.e2e.conftest import wait_for

pytestmark = pytest.mark.usefixtures("worker")
QUICK = {"epochs": 1, "batch_size": 32, "max_seq_length": 32, "adapter_epochs": 2}


def submit(api: TestClient, spec: dict) -> dict:
    response = api.post("/v1/jobs", json={"type": "compare", "spec": spec})
    assert response.status_code == 202, response.text
    return response.json()


def children(api: TestClient, job_id: str) -> dict[str, dict]:
    rows = {c["id"]: c for c in api.get(f"/v1/jobs/{job_id}/children").json()}
    planned = api.get(f"/v1/jobs/{job_id}").json()["result"]["children"]
    return {c["method"]: rows[c["job_id"]] for c in planned}


def test_compare_runs_every_method_and_serves_one_report(
    api: TestClient, sample_id: str, tiny_ref: str
) -> None:
    other = api.post("/v1/datasets", files=beir_files(), data={"name": "other"}).json()["id"]
    job = submit(
        api,
        {
            "dataset_id": sample_id,
            "base_model": tiny_ref,
            "forgetting_dataset_id": other,
            "params": QUICK,
            "data_checks": "drop",  # the sample: 2 test queries have a train query's text
        },
    )
    done, seen = wait_for(api, job["id"], timeout=1200)
    assert done["status"] == "succeeded", done["error"]
    assert seen == sorted(seen)
    kids = children(api, job["id"])
    assert {k: c["status"] for k, c in kids.items()} == dict.fromkeys(kids, "succeeded")
    # No worker waited for another job: a child that builds on the fine-tune was claimed only
    # once the fine-tune had ended, and the compare job only once every child had.
    assert kids["full+nudge-n"]["started_at"] >= kids["full"]["finished_at"]
    assert done["started_at"] >= max(c["finished_at"] for c in kids.values())
    assert done["attempts"] == 1 and kids["full+nudge-n"]["attempts"] == 1
    # NUDGE composed with the full fine-tune: its index belongs to the fine-tuned model
    full_model = kids["full"]["result"]["model_id"]
    assert kids["full+nudge-n"]["result"]["model"] == full_model
    assert kids["nudge-n"]["result"]["model"] == tiny_ref
    assert kids["nudge-n"]["result"]["docs_moved"] > 0

    report = api.get(f"/v1/jobs/{job['id']}/report").json()
    assert report == done["result"]["report"]
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == ["base", "full", "lora", "adapter", "nudge-n", "full+nudge-n"]
    assert report["num_queries"] == 300 and report["forgetting_dataset"] == "other"
    assert {m: r["reencode"] for m, r in rows.items()} == {
        "base": False,
        "full": True,
        "lora": True,
        "adapter": False,
        "nudge-n": False,
        "full+nudge-n": True,
    }
    nudge = rows["nudge-n"]
    assert nudge["test"]["ndcg@10"] == pytest.approx(
        kids["nudge-n"]["result"]["test"]["after"]["ndcg@10"]
    )
    assert nudge["forgetting"] == rows["base"]["forgetting"]  # the model did not change
    assert rows["full+nudge-n"]["forgetting"] == rows["full"]["forgetting"]
    # The fine-tuned model keeps its forgetting, where the promotion gate reads it.
    kept = api.get(f"/v1/models/{full_model}").json()["metrics"]["forgetting"]
    assert kept["compare_job_id"] == job["id"] and kept["dataset_id"] == other
    forgot = rows["base"]["forgetting"]["ndcg@10"] - rows["full"]["forgetting"]["ndcg@10"]
    assert kept["drop"]["ndcg@10"] == pytest.approx(forgot)
    assert nudge["wins"] + nudge["losses"] + nudge["ties"] == 300
    assert all(g["text"] for g in nudge["top_gains"])
    assert rows["full+nudge-n"]["wall_seconds"] > rows["full"]["wall_seconds"]

    markdown = api.get(f"/v1/jobs/{job['id']}/report", params={"format": "markdown"})
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert "| nudge-n |" in markdown.text and "Biggest gains" in markdown.text


def test_cancelling_a_running_compare_job_cancels_its_running_child(
    api: TestClient, sample_id: str, tiny_ref: str
) -> None:
    long = {**QUICK, "epochs": 50}
    spec = {"dataset_id": sample_id, "base_model": tiny_ref, "params": long, "data_checks": "drop"}
    job = submit(api, spec)
    deadline = time.monotonic() + 300
    while children(api, job["id"])["full"]["stage"] != "train":  # the fine-tune is training
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert api.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    done, _ = wait_for(api, job["id"], timeout=30)
    assert done["status"] == "cancelled"
    wait_for(api, children(api, job["id"])["full"]["id"], timeout=60)  # stops at its next step
    kids = children(api, job["id"])
    assert kids.pop("base")["status"] in ("succeeded", "cancelled")  # the worker's pick
    assert {m: c["status"] for m, c in kids.items()} == dict.fromkeys(kids, "cancelled")
    assert kids["full+nudge-n"]["started_at"] is None  # never claimed: it waited on "full"
    models = api.get("/v1/models").json()["data"]
    assert not any(m["job_id"] == kids["full"]["id"] for m in models)

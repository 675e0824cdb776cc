"""Data checks through HTTP: counted in an upload's stats, fatal ones refuse a fine-tune
(at submission from the stored checks, and again when the job loads the data)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from core.jobs.runner import run_job
from core.settings import Settings
from core.store.db import make_engine, make_session_factory
from core.store.tables import JobRow

DOCS = {
    "d0": "aspirin lowers the risk of a second heart attack in adults",
    "d1": "Aspirin lowers the risk of a second heart attack in adults!",  # d0 normalized
    "d2": "protein folding in yeast cells under heat stress",
    "d3": "vitamin d and bone density in older women",
}
QUERIES = {
    "q0": "Does aspirin prevent heart attacks?",
    "q1": "yeast protein folding",
    "q2": "bone density",
    "t0": "does aspirin prevent heart attacks",
}


def leaky_files(train: str = "train") -> list[tuple[str, tuple[str, bytes]]]:
    """t0 (test) is q0 (train) normalized; q2 lists its positive d3 as a negative."""
    corpus = "".join(json.dumps({"_id": d, "text": t}) + "\n" for d, t in DOCS.items())
    queries = "".join(json.dumps({"_id": q, "text": t}) + "\n" for q, t in QUERIES.items())
    header = "query-id\tcorpus-id\tscore\n"
    negatives = json.dumps({"query-id": "q2", "corpus-ids": ["d3", "d2"]}) + "\n"
    parts = {
        "corpus.jsonl": corpus,
        "queries.jsonl": queries,
        f"qrels/{train}.tsv": header + "q0\td0\t1\nq1\td2\t1\nq2\td3\t1\n",
        "qrels/test.tsv": header + "t0\td0\t1\n",
        "negatives.jsonl": negatives,
    }
    return [("files", (name, body.encode())) for name, body in parts.items()]


def finetune(dataset_id: str, **spec: object) -> dict:
    base = {"dataset_id": dataset_id, "base_model": "tiny", "method": "full"}
    return {"type": "finetune", "spec": {**base, **spec, "params": {"epochs": 1}}}


def test_upload_counts_each_check_and_finetune_is_refused_with_ids(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    upload = client.post("/v1/datasets", files=leaky_files(), data={"name": "leaky"})
    assert upload.status_code == 201, upload.text
    checks = upload.json()["stats"]["checks"]
    assert checks["test_query_in_train"]["count"] == 1
    assert checks["test_query_in_train"]["items"][0]["match"] == "normalized"
    assert checks["near_duplicate_documents"]["items"] == [
        {"doc_ids": ["d0", "d1"], "similarity": 1.0}
    ]
    assert checks["positive_is_negative"]["count"] == 1
    assert checks["query_without_positives"]["count"] == 0
    response = client.post("/v1/jobs", json=finetune(upload.json()["id"]))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "data_check_failed" and error["param"] == "dataset_id"
    assert {i["code"]: i["ids"] for i in error["issues"]} == {
        "test_query_in_train": ["t0", "q0"],
        "positive_is_negative": ["q2", "d3"],
    }
    assert client.get("/v1/jobs").json()["total"] == 0


def test_a_job_on_splits_the_stats_did_not_check_fails_before_training(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    """Stats check the split named train; a fine-tune of another split is checked when it
    loads the data, and fails with the same code before any training."""
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    upload = client.post("/v1/datasets", files=leaky_files("mine"), data={"name": "leaky"})
    assert upload.status_code == 201, upload.text
    response = client.post("/v1/jobs", json=finetune(upload.json()["id"], train_split="mine"))
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    factory = make_session_factory(make_engine(settings.db_url))
    outcome = run_job(job_id, factory=factory, settings=settings, worker="t", enqueue=print)
    assert outcome == "failed"
    with factory() as session:
        job = session.get(JobRow, job_id)
        assert job.error_code == "data_check_failed"
        assert "t0" in job.error_message and "q0" in job.error_message
    assert client.get("/v1/models").json()["data"][-1]["kind"] == "base"  # no model made

"""int8 through HTTP on real Postgres: a quantize job measures the loss and stores it with the
model (GET /v1/models/{id}); int8 mining is refused without a measurement within the limits
(jobs run in this process)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.jobs.runner import run_job
from core.settings import Settings
from core.store.db import transaction
from core.store.tables import DEFAULT_PROJECT, ModelRow


@pytest.fixture
def tiny(settings: Settings, tiny_model_dir: Path) -> str:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny-bert", dirs_exist_ok=True)
    return "tiny-bert"


def run(client: TestClient, settings: Settings, type: str, spec: dict) -> dict:
    response = client.post("/v1/jobs", json={"type": type, "spec": spec})
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    factory = client.app.state.factory  # type: ignore[attr-defined]
    run_job(job_id, factory=factory, settings=settings, worker="test", enqueue=lambda *_: None)
    return client.get(f"/v1/jobs/{job_id}").json()


def test_int8_is_measured_stored_shown_and_required(
    client: TestClient, settings: Settings, dataset_id: str, tiny: str
) -> None:
    factory = client.app.state.factory  # type: ignore[attr-defined]
    with transaction(factory) as session:
        row = ModelRow(
            project_id=DEFAULT_PROJECT,
            reference="",
            kind="finetuned",
            path=str(settings.models_dir / tiny),
        )
        session.add(row)
        session.flush()
        model_id = row.id
    mine = {"dataset_id": dataset_id, "model": model_id, "precision": "int8"}
    refused = run(client, settings, "mine", mine)
    assert (refused["status"], refused["error"]["code"]) == ("failed", "int8_not_measured")

    strict = settings.model_copy(update={"int8_min_mean_cosine": 1.0})
    quantize = {"dataset_id": dataset_id, "model": model_id}  # no val split: test is measured
    lossy = run(client, strict, "quantize", quantize)
    assert (lossy["status"], lossy["error"]["code"]) == ("failed", "int8_too_lossy")
    assert "mean cosine" in lossy["error"]["message"]
    shown = client.get(f"/v1/models/{model_id}").json()["quantization"]
    assert shown["accepted"] is False and shown["split"] == "test"
    assert 0.5 < shown["min_cosine"] <= shown["mean_cosine"] < 1.0
    assert shown["sample"] == 6 and "ndcg_change" in shown
    assert run(client, settings, "mine", mine)["error"]["code"] == "int8_too_lossy"

    lenient = settings.model_copy(update={"int8_min_mean_cosine": 0.5, "int8_max_ndcg_drop": 100})
    measured = run(client, lenient, "quantize", quantize)
    assert measured["status"] == "succeeded", measured["error"]
    assert client.get(f"/v1/models/{model_id}").json()["quantization"]["accepted"] is True
    mined = run(client, settings, "mine", mine)
    assert mined["status"] == "succeeded", mined["error"]
    assert mined["result"]["precision"] == "int8"
    fp32 = run(client, settings, "mine", {**mine, "precision": "fp32"})
    assert fp32["result"]["precision"] == "fp32"
    # int8 vectors are cached apart from the fp32 ones the quantize job's evaluation cached
    assert mined["result"]["encodes"]["documents_encoded"] == 6
    assert fp32["result"]["encodes"]["documents_encoded"] == 0

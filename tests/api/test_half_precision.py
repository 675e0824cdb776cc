"""fp16/bf16 job encodes through HTTP on real Postgres (jobs run in this process): refused at
submission where the API can know (a remote model), else encoded at fp32 on a worker without
a CUDA GPU, with an event saying why and fp32 in the result."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.api.test_quantize import run


@pytest.fixture
def tiny(settings: Settings, tiny_model_dir: Path) -> str:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny-bert", dirs_exist_ok=True)
    return "tiny-bert"


def test_half_is_refused_at_submission_where_the_api_can_know(
    client: TestClient, dataset_id: str
) -> None:
    cases = [
        ("remote:other", "fp16", "precision_unsupported", "precision"),
        ("tiny-bert", "fp8", "invalid_request", "spec.precision"),
    ]
    for model, precision, code, param in cases:
        spec = {"dataset_id": dataset_id, "model": model, "precision": precision}
        response = client.post("/v1/jobs", json={"type": "eval", "spec": spec})
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert (error["code"], error["param"]) == (code, param)
    assert client.get("/v1/jobs").json()["total"] == 0


def test_a_worker_without_a_gpu_encodes_at_fp32_and_says_why(
    client: TestClient, settings: Settings, dataset_id: str, tiny: str
) -> None:
    on_cpu = settings.model_copy(update={"device": "cpu"})
    for job_type, precision in (("eval", "fp16"), ("mine", "bf16"), ("index", "fp16")):
        spec = {"dataset_id": dataset_id, "model": tiny, "precision": precision}
        job = run(client, on_cpu, job_type, spec)
        assert job["status"] == "succeeded", job["error"]
        assert job["result"]["precision"] == "fp32"
        events = client.get(f"/v1/jobs/{job['id']}/events").json()
        warnings = [e for e in events if e["level"] == "warning"]
        assert [(e["message"], e["data"]) for e in warnings] == [
            (
                f"{precision} asked, encoding at fp32: {precision} needs a CUDA GPU and this "
                "process encodes on the cpu",
                {"asked": precision},
            )
        ]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_a_gpu_worker_encodes_at_the_precision_asked(
    client: TestClient, settings: Settings, dataset_id: str, tiny: str
) -> None:
    on_gpu = settings.model_copy(update={"device": "cuda"})
    spec = {"dataset_id": dataset_id, "model": tiny, "precision": "fp16"}
    job = run(client, on_gpu, "eval", spec)
    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["precision"] == "fp16"
    events = client.get(f"/v1/jobs/{job['id']}/events").json()
    assert not [e for e in events if e["level"] == "warning"]

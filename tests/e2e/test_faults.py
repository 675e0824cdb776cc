"""Faults with real processes: kill -9, a job that keeps killing its worker, a broker that
lost its queue, SIGTERM during a deploy. Postgres stays the source of truth throughout."""

from __future__ import annotations

import re
import signal
import time

import redis
from fastapi.testclient import TestClient

from core.settings import Settings
from tests.conftest import REDIS
from tests.e2e.conftest import Workers, wait_for


def finetune(api: TestClient, dataset: str, model: str, **params: object) -> str:
    response = api.post(
        "/v1/jobs",
        json={
            "type": "finetune",
            "spec": {
                "dataset_id": dataset,
                "base_model": model,
                "method": "full",
                "params": {"batch_size": 16, "max_seq_length": 32, **params},
                "data_checks": "drop",  # the sample: 2 test queries have a train query's text
            },
        },
    )
    assert response.status_code == 202, response.text
    return response.json()["id"]


def wait_training(api: TestClient, job_id: str, *, attempt: int, min_step: int = 1) -> dict:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        job = api.get(f"/v1/jobs/{job_id}").json()
        if (job["status"], job["attempts"], job["stage"]) == ("running", attempt, "train") and job[
            "current_step"
        ] >= min_step:
            return job
        assert job["status"] in ("queued", "running"), job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not start training (attempt {attempt})")


def events(api: TestClient, job_id: str) -> list[str]:
    return [f"{e['message']} {e['data']}" for e in api.get(f"/v1/jobs/{job_id}/events").json()]


def test_kill_9_mid_finetune_resumes_from_checkpoint_to_one_model(
    api: TestClient, workers: Workers, sample_id: str, tiny_ref: str, e2e_settings
) -> None:
    job_id = finetune(api, sample_id, tiny_ref, epochs=2, eval_steps=10, save_steps=10)
    first = workers.start()
    wait_training(api, job_id, attempt=1, min_step=14)  # a checkpoint at step 10 exists
    workers.kill(first)  # the whole worker, as an OOM kill or a lost machine would
    workers.start()
    job, _ = wait_for(api, job_id, timeout=600)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    log = events(api, job_id)
    assert any("worker stopped answering" in e for e in log)
    # The kill lands a few steps after 14, so the worker may have saved checkpoint-20 by then.
    resumed = [int(m[1]) for e in log if (m := re.search(r"resuming from checkpoint-(\d+)", e))]
    assert resumed and resumed[0] >= 10 and resumed[0] % 10 == 0, log
    tuned = [m for m in api.get("/v1/models").json()["data"] if m["job_id"] == job_id]
    assert len(tuned) == 1 and tuned[0]["id"] == job["result"]["model_id"]


def test_a_job_that_keeps_killing_its_worker_ends_worker_lost(
    api: TestClient, workers: Workers, sample_id: str, tiny_ref: str, e2e_settings
) -> None:
    job_id = finetune(api, sample_id, tiny_ref, epochs=50)
    for attempt in range(1, e2e_settings.job_max_attempts + 1):
        process = workers.start()
        wait_training(api, job_id, attempt=attempt)
        workers.kill(process)
    job, _ = wait_for(api, job_id, timeout=120)
    assert (job["status"], job["error"]["code"]) == ("failed", "worker_lost")
    assert job["attempts"] == e2e_settings.job_max_attempts


def test_queued_job_survives_the_broker_losing_its_queue(
    api: TestClient,
    workers: Workers,
    sample_id: str,
    tiny_ref: str,
    e2e_settings: Settings,
) -> None:
    response = api.post(
        "/v1/jobs",
        json={"type": "eval", "spec": {"dataset_id": sample_id, "model": tiny_ref}},
    )
    job_id = response.json()["id"]
    client = redis.Redis.from_url(REDIS)
    lost = [k for k in client.scan_iter(f"{e2e_settings.broker_prefix}*")]
    assert lost and client.delete(*lost)  # Redis restarted without persistence
    workers.start()
    job, _ = wait_for(api, job_id, timeout=120)
    assert job["status"] == "succeeded", job["error"]
    assert any("broker no longer held it" in e for e in events(api, job_id))


def test_sigterm_hands_the_running_job_back_promptly(
    api: TestClient, workers: Workers, sample_id: str, tiny_ref: str
) -> None:
    job_id = finetune(api, sample_id, tiny_ref, epochs=50)
    process = workers.start()
    wait_training(api, job_id, attempt=1)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)  # a deploy: Celery's warm shutdown
    job, _ = wait_for(api, job_id, until=("queued",), timeout=30)
    assert time.monotonic() - started < 60  # against a visibility timeout of hours
    assert job["attempts"] == 0  # handing back is not a failed attempt
    assert process.wait(timeout=60) == 0
    workers.start()  # any worker picks it up again
    wait_training(api, job_id, attempt=1)
    assert api.post(f"/v1/jobs/{job_id}/cancel").status_code == 200
    job, _ = wait_for(api, job_id, timeout=120)
    assert job["status"] == "cancelled"

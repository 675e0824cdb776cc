"""GET /metrics: Prometheus text with the job table's counts and the serving counters, and
who may read it (EMBEDTUNE_METRICS_ACCESS)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.main import create_app
from core.settings import Settings

NO_KEY = {"Authorization": ""}


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_a_key_from_other_addresses_and_no_key_when_open(
    client: TestClient, settings: Settings
) -> None:
    # The test client's address ("testclient") is not loopback: a key is needed.
    refused = client.get("/metrics", headers=NO_KEY)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "invalid_api_key"
    served = client.get("/metrics")
    assert served.status_code == 200
    assert served.headers["content-type"].startswith("text/plain")
    opened = settings.model_copy(update={"metrics_access": "open"})
    with TestClient(create_app(opened)) as anonymous:
        assert anonymous.get("/metrics", headers=NO_KEY).status_code == 200


def test_metrics_count_jobs_queues_requests_and_embedded_texts(
    client: TestClient, settings: Settings, dataset_id: str, tiny_model_dir: Path
) -> None:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    before = samples(client.get("/metrics").text)
    for _ in range(2):
        job = {"type": "eval", "spec": {"dataset_id": dataset_id, "model": "tiny"}}
        assert client.post("/v1/jobs", json=job).status_code == 202
    texts = ["one text", "another text", "a third one"]
    assert client.post("/v1/embeddings", json={"model": "tiny", "input": texts}).status_code == 200
    assert client.post("/v1/embeddings", json={"model": "nope", "input": "x"}).status_code == 404
    text = client.get("/metrics").text
    after = samples(text)
    assert value(after, "embedtune_jobs", type="eval", state="queued") == 2
    assert value(after, "embedtune_jobs", type="finetune", state="running") == 0
    assert value(after, "embedtune_queue_depth", queue="cpu") == 2
    assert value(after, "embedtune_queue_depth", queue="gpu") == 0
    route = {"route": "/v1/embeddings", "method": "POST"}
    for status, n in (("200", 1), ("404", 1)):
        grew = value(after, "embedtune_http_requests_total", **route, status=status) - value(
            before, "embedtune_http_requests_total", **route, status=status
        )
        assert grew == n
    assert value(after, "embedtune_http_request_seconds_count", route="/v1/embeddings") >= 2
    embedded = value(after, "embedtune_texts_embedded_total", side="document") - value(
        before, "embedtune_texts_embedded_total", side="document"
    )
    assert embedded == 3
    assert value(after, "embedtune_tokens_embedded_total") > value(
        before, "embedtune_tokens_embedded_total"
    )
    assert value(after, "embedtune_batch_size_count") > value(before, "embedtune_batch_size_count")
    assert value(after, "embedtune_model_loads_total") >= 1
    assert value(after, "embedtune_models_loaded") >= 1
    # A served model whose files were deleted is unloaded (an eviction) and not found.
    shutil.rmtree(settings.models_dir / "tiny")
    assert client.post("/v1/embeddings", json={"model": "tiny", "input": "x"}).status_code == 404
    evicted = samples(client.get("/metrics").text)
    assert (
        value(evicted, "embedtune_model_evictions_total")
        == value(after, "embedtune_model_evictions_total") + 1
    )
    # Ids never become labels: the job route is counted by its template.
    client.get("/v1/jobs/job_doesnotexist")
    text = client.get("/metrics").text
    assert 'route="/v1/jobs/{job_id}"' in text and "job_doesnotexist" not in text
    assert not re.search(r"embedtune_\w+\{[^}]*ds_", text)

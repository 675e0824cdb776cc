"""Compare and nudge jobs through HTTP on real Postgres: children, cancel cascade, NUDGE index
served by the search endpoint (jobs run in this process; tests/e2e runs them on a worker)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.compare import DEFAULT_METHODS
from core.jobs.runner import run_job
from core.settings import Settings
from core.store.tables import IndexRow


@pytest.fixture
def tiny(settings: Settings, tiny_model_dir: Path) -> str:
    """The tiny model where operators put local models; clients name it."""
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny-bert", dirs_exist_ok=True)
    return "tiny-bert"


def submit(client: TestClient, type: str, spec: dict) -> dict:
    response = client.post("/v1/jobs", json={"type": type, "spec": spec})
    assert response.status_code == 202, response.text
    return response.json()


def test_a_compare_job_creates_one_queued_child_per_method(
    client: TestClient, dataset_id: str, tiny: str
) -> None:
    job = submit(client, "compare", {"dataset_id": dataset_id, "base_model": tiny})
    planned = job["result"]["children"]
    assert [c["method"] for c in planned] == list(DEFAULT_METHODS)
    children = client.get(f"/v1/jobs/{job['id']}/children").json()
    assert [c["id"] for c in children] == [c["job_id"] for c in planned]
    assert [c["type"] for c in children] == [
        "eval",
        "finetune",
        "finetune",
        "finetune",
        "nudge",
        "nudge",
    ]
    assert all(c["parent_id"] == job["id"] and c["status"] == "queued" for c in children)
    assert [c["spec"].get("method") for c in children[1:4]] == ["full", "lora", "adapter"]
    assert children[5]["spec"]["model_from_job"] == children[1]["id"]  # NUDGE on the full model
    assert children[4]["spec"]["model"] == tiny
    # one split definition: every child holds out the same share of the same train split
    assert {c["spec"]["val_fraction"] for c in children[1:]} == {0.2}


def test_cancelling_a_compare_job_cancels_its_children(
    client: TestClient, dataset_id: str, tiny: str
) -> None:
    job = submit(client, "compare", {"dataset_id": dataset_id, "base_model": tiny})
    children = [c["job_id"] for c in job["result"]["children"]]
    # each child can be cancelled on its own ...
    assert client.post(f"/v1/jobs/{children[2]}/cancel").json()["status"] == "cancelled"
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "queued"
    # ... and cancelling the compare job cancels the rest
    assert client.post(f"/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"
    statuses = {c["id"]: c["status"] for c in client.get(f"/v1/jobs/{job['id']}/children").json()}
    assert set(statuses.values()) == {"cancelled"} and set(statuses) == set(children)
    assert client.post(f"/v1/jobs/{children[0]}/cancel").status_code == 409


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"methods": ["full", "nudge-n"]}, 422),  # no base
        ({"methods": ["base", "full+nudge-n"]}, 422),  # builds on a fine-tune not run
        ({"methods": ["base", "base"]}, 422),
        ({"forgetting_dataset_id": "ds_missing"}, 404),
        ({"test_split": "dev"}, 422),
        ({"params": {"epochs": -1}}, 422),
        ({"base_model": "/etc"}, 422),
    ],
)
def test_invalid_compare_requests_are_refused(
    client: TestClient, dataset_id: str, tiny: str, change: dict, status: int
) -> None:
    body = {"type": "compare", "spec": {"dataset_id": dataset_id, "base_model": tiny, **change}}
    response = client.post("/v1/jobs", json=body)
    assert response.status_code == status, response.text
    assert client.get("/v1/jobs").json()["total"] == 0


def test_the_report_exists_only_for_a_finished_compare_job(
    client: TestClient, dataset_id: str, tiny: str
) -> None:
    job = submit(client, "compare", {"dataset_id": dataset_id, "base_model": tiny})
    response = client.get(f"/v1/jobs/{job['id']}/report")
    assert response.status_code == 409 and response.json()["error"]["code"] == "job_not_finished"
    child = job["result"]["children"][0]["job_id"]
    assert client.get(f"/v1/jobs/{child}/report").json()["error"]["code"] == "no_report"
    assert client.get(f"/v1/jobs/{job['id']}/report?format=pdf").status_code == 422


def test_a_nudge_index_serves_results_that_differ_where_documents_moved(
    client: TestClient, settings: Settings, dataset_id: str, tiny: str
) -> None:
    base = submit(client, "index", {"dataset_id": dataset_id, "model": tiny, "kind": "flat"})
    nudged = submit(
        client,
        "nudge",
        {"dataset_id": dataset_id, "model": tiny, "steps": [0.5], "val_fraction": 0.34},
    )
    factory = client.app.state.factory  # type: ignore[attr-defined]
    for job in (base, nudged):
        outcome = run_job(
            job["id"], factory=factory, settings=settings, worker="test", enqueue=lambda *_: None
        )
        assert outcome == "succeeded", client.get(f"/v1/jobs/{job['id']}").json()["error"]
    base, nudged = (client.get(f"/v1/jobs/{j['id']}").json()["result"] for j in (base, nudged))
    assert (nudged["docs_moved"], nudged["step"], nudged["num_documents"]) == (3, 0.5, 6)
    with factory() as session:
        row = session.get(IndexRow, nudged["index_id"])
        assert (row.method, row.model, row.tuning["step"]) == ("nudge-n", tiny, 0.5)
        assert session.get(IndexRow, base["index_id"]).method == "base"

    queries = ["topic 0", "document 4 about topic 1", "unrelated words"]

    def scores(index_id: str) -> list[dict[str, float]]:
        response = client.post(
            f"/v1/indexes/{index_id}/search", json={"queries": queries, "top_k": 6}
        )
        assert response.status_code == 200, response.text
        return [{d["id"]: d["score"] for d in r["documents"]} for r in response.json()["results"]]

    # the training queries q0, q1, q2 answer d0, d1, d2: those documents and no others moved
    for before, after in zip(scores(base["index_id"]), scores(nudged["index_id"]), strict=True):
        changed = {d for d in before if abs(before[d] - after[d]) > 1e-5}
        assert changed == {"d0", "d1", "d2"}

"""Compare and nudge jobs through HTTP on real Postgres: children, cancel cascade, NUDGE index
served by the search endpoint (jobs run in this process; tests/e2e runs them on a worker)."""

from __future__ import annotations

import json
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


def topic_files(n_docs: int, n_queries: int, test_from: int) -> list[tuple[str, tuple[str, bytes]]]:
    """A BEIR dataset whose query ``i`` judges document ``i``: queries below ``test_from``
    in train, the rest in test."""
    corpus = "".join(
        json.dumps({"_id": f"d{i}", "title": "", "text": f"document {i} about topic {i % 4}"})
        + "\n"
        for i in range(n_docs)
    )
    queries = "".join(
        json.dumps({"_id": f"q{i}", "text": f"what is topic {i % 4} number {i}"}) + "\n"
        for i in range(n_queries)
    )
    head = "query-id\tcorpus-id\tscore\n"
    train = head + "".join(f"q{i}\td{i}\t1\n" for i in range(test_from))
    test = head + "".join(f"q{i}\td{i}\t1\n" for i in range(test_from, n_queries))
    parts = {
        "corpus.jsonl": corpus,
        "queries.jsonl": queries,
        "qrels/train.tsv": train,
        "qrels/test.tsv": test,
    }
    return [("files", (name, body.encode())) for name, body in parts.items()]


def test_a_compare_encodes_each_corpus_once_per_document_side(
    client: TestClient, settings: Settings, tiny: str
) -> None:
    """base, adapter, nudge-n and nudge-m share one document side (the base model's): each
    corpus is encoded once in all, validation before training and the adapter's scoring
    included; the forgetting set's corpus adds only the texts the first one lacked."""
    upload = [("main", topic_files(16, 12, 9)), ("other", topic_files(20, 4, 0))]
    ids = {}
    for name, files in upload:
        response = client.post("/v1/datasets", files=files, data={"name": name})
        assert response.status_code == 201, response.text
        ids[name] = response.json()["id"]
    params = {"adapter_epochs": 2, "batch_size": 4, "max_seq_length": 64}
    job = submit(
        client,
        "compare",
        {
            "dataset_id": ids["main"],
            "base_model": tiny,
            "forgetting_dataset_id": ids["other"],
            "methods": ["base", "adapter", "nudge-n", "nudge-m"],
            "val_fraction": 0.34,
            "params": params,
        },
    )
    factory = client.app.state.factory  # type: ignore[attr-defined]
    order = [c["job_id"] for c in job["result"]["children"]] + [job["id"]]
    for job_id in order:
        outcome = run_job(
            job_id, factory=factory, settings=settings, worker="test", enqueue=lambda *_: None
        )
        assert outcome == "succeeded", client.get(f"/v1/jobs/{job_id}").json()["error"]
    results = [client.get(f"/v1/jobs/{j}").json()["result"] for j in order]
    encodes = [r.get("encodes", {}) for r in results]
    corpus = [e.get("corpus_encodes", 0) for e in encodes]
    assert corpus == [1, 0, 0, 0, 1]  # the base eval (main), the compare's forgetting (other)
    assert [e.get("documents_encoded", 0) for e in encodes] == [16, 0, 0, 0, 4]
    adapter = encodes[1]
    assert adapter["documents_cached"] >= 2 * 16  # base vectors + the validation before training
    series = client.get(f"/v1/jobs/{order[-1]}/metrics").json()["series"]
    assert series["corpus_encodes"][0]["value"] == 1
    rows = {r["method"]: r for r in results[-1]["report"]["rows"]}
    assert set(rows) == {"base", "adapter", "nudge-n", "nudge-m"}
    assert all(r["status"] == "succeeded" and r["test"] for r in rows.values())

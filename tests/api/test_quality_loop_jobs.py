"""The quality-loop jobs through HTTP on real Postgres: a compare with merged, NUDGE-on-adapter
and reranked rows, a merge job, a recipe search whose recipe a fine-tune reuses (jobs run in
this process)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.jobs.runner import run_job
from core.settings import Settings
from core.store.tables import ModelRow
from tests.api.conftest import beir_files

QUICK = {"epochs": 1, "batch_size": 32, "max_seq_length": 32, "adapter_epochs": 3}


@pytest.fixture
def tiny(settings: Settings, tiny_model_dir: Path) -> str:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny-bert", dirs_exist_ok=True)
    return "tiny-bert"


@pytest.fixture
def reranker(settings: Settings, tiny_reranker_dir: Path) -> str:
    shutil.copytree(tiny_reranker_dir, settings.models_dir / "tiny-reranker", dirs_exist_ok=True)
    return "tiny-reranker"


@pytest.fixture
def other(client: TestClient) -> str:
    response = client.post("/v1/datasets", files=beir_files(), data={"name": "other"})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def submit(client: TestClient, type: str, spec: dict) -> dict:
    response = client.post("/v1/jobs", json={"type": type, "spec": spec})
    assert response.status_code == 202, response.text
    return response.json()


def run(client: TestClient, settings: Settings, job_id: str) -> dict:
    factory = client.app.state.factory  # type: ignore[attr-defined]
    outcome = run_job(job_id, factory=factory, settings=settings, worker="t", enqueue=lambda *_: 0)
    job = client.get(f"/v1/jobs/{job_id}").json()
    assert outcome == "succeeded", job["error"]
    return job


def test_compare_rows_for_merge_nudge_on_adapter_and_reranking(
    client: TestClient, settings: Settings, sample_id: str, tiny: str, reranker: str, other: str
) -> None:
    methods = ["base", "adapter", "adapter+merge", "adapter+merge+nudge-n", "adapter+nudge-n"]
    job = submit(
        client,
        "compare",
        {
            "dataset_id": sample_id,
            "base_model": tiny,
            "forgetting_dataset_id": other,
            "methods": methods,
            "params": QUICK,
            "reranker": reranker,
            "rerank": ["base", "adapter+merge"],
            "rerank_top_k": 5,
            "data_checks": "drop",  # the sample: 2 test queries have a train query's text
        },
    )
    planned = {c["method"]: c["job_id"] for c in job["result"]["children"]}
    assert list(planned) == [*methods, "base+rerank", "adapter+merge+rerank"]
    kids = {c["id"]: c for c in client.get(f"/v1/jobs/{job['id']}/children").json()}
    assert len(kids) == len(methods)  # a reranked row is no job of its own
    merge = kids[planned["adapter+merge"]]
    assert merge["type"] == "merge" and merge["spec"]["models_from_jobs"] == [planned["adapter"]]
    assert merge["spec"]["forgetting_dataset_id"] == other
    assert kids[planned["adapter+merge+nudge-n"]]["spec"]["model_from_job"] == merge["id"]
    assert kids[planned["adapter+nudge-n"]]["spec"]["model_from_job"] == planned["adapter"]
    for method in methods:  # in order: each one's dependencies finished before it
        run(client, settings, planned[method])
    merged = client.get(f"/v1/jobs/{merge['id']}").json()["result"]
    assert merged["merge"]["search"] == "grid" and merged["merge"]["candidates"] == 11
    assert merged["merge"]["corpus_encodes"] == 0  # an adapter's documents are the base's
    with client.app.state.factory() as session:  # type: ignore[attr-defined]
        row = session.get(ModelRow, merged["model_id"])
        assert (row.kind, row.method) == ("finetuned", "adapter")
        assert "LM-Cocktail" in (Path(row.path) / "README.md").read_text("utf-8")

    report = run(client, settings, job["id"])["result"]["report"]
    rows = {r["method"]: r for r in report["rows"]}
    assert list(rows) == list(planned)
    for method, row in rows.items():
        assert row["status"] == "succeeded", (method, row)
        assert 0 <= row["test"]["ndcg@10"] <= 1 and row["forgetting"] is not None
    assert rows["adapter+merge"]["reencode"] is False
    assert rows["adapter+merge+nudge-n"]["forgetting"] == rows["adapter+merge"]["forgetting"]
    # reranking changes the ranking of the same candidates; forgetting is the model's own
    assert rows["base+rerank"]["test"] != rows["base"]["test"]
    assert rows["base+rerank"]["forgetting"] == rows["base"]["forgetting"]


def test_a_search_job_keeps_the_best_recipe_and_a_finetune_reuses_it(
    client: TestClient, settings: Settings, sample_id: str, tiny: str
) -> None:
    job = submit(
        client,
        "search",
        {
            "dataset_id": sample_id,
            "base_model": tiny,
            "method": "adapter",
            "budget": {"trials": 2},
            "search": ["learning_rate", "num_hard_negatives"],
            "params": QUICK,
            "data_checks": "drop",
        },
    )
    result = run(client, settings, job["id"])["result"]
    assert [t["number"] for t in result["trials"]] == [0, 1]
    assert result["value"] == max(t["value"] for t in result["trials"])
    assert result["params"]["adapter_epochs"] == QUICK["adapter_epochs"]  # fixed ones kept
    best = max(result["trials"], key=lambda t: t["value"])
    assert result["params"]["adapter_learning_rate"] == best["params"]["adapter_learning_rate"]
    with client.app.state.factory() as session:  # type: ignore[attr-defined]
        path = Path(session.get(ModelRow, result["model_id"]).path)
    assert (path / "recipe.json").is_file()
    again = submit(
        client,
        "finetune",
        {
            "dataset_id": sample_id,
            "base_model": tiny,
            "method": "adapter",
            "params": result["params"],
            "data_checks": "drop",
        },
    )
    assert (
        again["spec"]["params"]["adapter_learning_rate"] == best["params"]["adapter_learning_rate"]
    )


@pytest.mark.parametrize(
    ("type", "change", "param"),
    [
        ("compare", {"rerank": ["base"]}, None),  # no reranker
        ("compare", {"rerank": ["nudge-n"], "reranker": "tiny-bert"}, None),
        ("compare", {"methods": ["base", "adapter+merge"]}, None),  # merge of a missing method
        ("merge", {"models": []}, None),
        ("merge", {"models": ["tiny-bert"], "weights": [0.5, 0.6]}, "weights"),
        ("search", {"search": ["dropout"]}, None),
        ("search", {"budget": {"trials": 0}}, None),
        ("finetune", {"params": {"rounds": 2}, "method": "lora"}, "rounds"),
    ],
)
def test_invalid_quality_loop_requests_are_refused(
    client: TestClient, sample_id: str, tiny: str, type: str, change: dict, param: str | None
) -> None:
    body = {"dataset_id": sample_id, "base_model": tiny, **change}
    response = client.post("/v1/jobs", json={"type": type, "spec": body})
    assert response.status_code == 422, response.text
    if param:
        assert response.json()["error"]["param"] == param
    assert client.get("/v1/jobs").json()["total"] == 0

"""The negative audit through HTTP: a mine job lists the negatives closest to a positive,
and corrections make a new dataset version, the mined one intact."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from core.jobs.runner import run_job
from core.settings import Settings
from core.store.db import make_engine, make_session_factory

OPTIONS = {"range_min": 0, "range_max": 6, "num_negatives": 2, "relative_margin": None}


@pytest.fixture
def mined(client: TestClient, settings: Settings, tiny_model_dir: Path, dataset_id: str) -> dict:
    """A mine job over the 6-document dataset, run to completion in this process."""
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    spec = {"dataset_id": dataset_id, "model": "tiny", "split": "train", "options": OPTIONS}
    job_id = client.post("/v1/jobs", json={"type": "mine", "spec": spec}).json()["id"]
    factory = make_session_factory(make_engine(settings.db_url))
    assert run_job(job_id, factory=factory, settings=settings, worker="t", enqueue=print) == (
        "succeeded"
    )
    return client.get(f"/v1/jobs/{job_id}").json()["result"]


def test_the_review_lists_negatives_closest_to_their_positives(
    client: TestClient, mined: dict
) -> None:
    review = mined["review"]
    assert len(review) == mined["negatives"]  # fewer than REVIEW_SIZE: every one
    assert [r["margin"] for r in review] == sorted(r["margin"] for r in review)
    corpus_text = {f"d{i}": f"T{i} document {i} about topic {i % 3}" for i in range(6)}
    for item in review:
        assert item["query"] == f"topic {item['query_id'][1:]}"
        assert item["positive"] == corpus_text[item["positive_id"]]
        assert item["negative"] == corpus_text[item["negative_id"]]
        assert item["margin"] == pytest.approx(item["positive_score"] - item["negative_score"])


def test_corrections_make_a_new_version_and_keep_the_original(
    client: TestClient, mined: dict
) -> None:
    source = client.get(f"/v1/datasets/{mined['dataset_id']}").json()
    first = mined["review"][0]
    fix = {"query_id": first["query_id"], "doc_id": first["negative_id"]}
    response = client.post(
        f"/v1/datasets/{source['id']}/corrections", json={"corrections": [fix], "name": "fixed"}
    )
    assert response.status_code == 201, response.text
    new = response.json()
    assert new["id"] != source["id"] and response.headers["location"] == f"/v1/datasets/{new['id']}"
    assert new["name"] == "fixed"
    assert new["stats"]["corrections"] == {
        "source_dataset_id": source["id"],
        "split": "train",
        "count": 1,
        "items": [fix],
    }
    assert new["stats"]["negatives"] == source["stats"]["negatives"] - 1
    train_pairs = new["stats"]["splits"]["train"]["qrels_pairs"]
    assert train_pairs == source["stats"]["splits"]["train"]["qrels_pairs"] + 1
    assert client.get(f"/v1/datasets/{source['id']}").json() == source  # intact

    again = client.post(f"/v1/datasets/{new['id']}/corrections", json={"corrections": [fix]})
    assert again.status_code == 422
    error = again.json()["error"]
    assert error["code"] == "not_a_negative" and error["param"] == "corrections.0"
    missing = client.post("/v1/datasets/ds_missing/corrections", json={"corrections": [fix]})
    assert missing.status_code == 404

"""Uploads read as the user meant: column mapping, warnings, dropped empties, split checks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi.testclient import TestClient

from core.services import datasets as catalog
from core.settings import Settings
from core.store.db import make_engine, make_session_factory
from core.store.tables import DatasetRow
from tests.api.test_jobs import eval_job


def upload(client: TestClient, name: str, body: str, **form: str):
    return client.post("/v1/datasets", files=[("files", (name, body.encode()))], data=form)


def test_column_mapping_and_unused_columns_show_in_the_stats(client: TestClient) -> None:
    rows = [{"ask": f"q{i}", "reply": f"a{i}", "origin": "web"} for i in range(4)]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    refused = upload(client, "qa.jsonl", body)
    assert refused.status_code == 422
    response = upload(client, "qa.jsonl", body, columns="query=ask,positive=reply")
    assert response.status_code == 201, response.text
    stats = response.json()["stats"]
    assert stats["splits"]["train"]["judged_queries"] == 4
    assert [(w["code"], w["field"]) for w in stats["warnings"]] == [("unused_column", "origin")]
    assert stats["read_options"]["columns"] == {"query": "ask", "positive": "reply"}


def test_drop_empty_is_offered_and_counted(client: TestClient) -> None:
    data = {
        "queries": {"q1": "one", "q2": "two"},
        "corpus": {"d1": "doc one", "d2": ""},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"]},
    }
    refused = upload(client, "llama.json", json.dumps(data))
    assert refused.status_code == 422 and "drop_empty" in refused.json()["error"]["message"]
    response = upload(client, "llama.json", json.dumps(data), drop_empty="true")
    assert response.status_code == 201, response.text
    assert response.json()["stats"]["documents"] == 1
    assert "dropped 1 empty documents" in response.json()["stats"]["warnings"][0]["message"]


def test_a_split_the_dataset_lacks_is_refused_at_submission(client: TestClient) -> None:
    data = {
        "queries": {"q1": "one", "q2": "two"},
        "corpus": {"d1": "doc one", "d2": "doc two"},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"]},
        "queries_split": {"train": ["q1"], "val": ["q2"]},
    }
    dataset = upload(client, "rag.json", json.dumps(data)).json()
    assert sorted(dataset["stats"]["splits"]) == ["train", "val"]
    response = client.post("/v1/jobs", json=eval_job(dataset["id"], split="test"))
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "no_split" and "splits: train, val" in error["message"]
    assert client.post("/v1/jobs", json=eval_job(dataset["id"], split="val")).status_code == 202


def test_upload_with_a_model_reports_lengths_in_its_tokens(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    shutil.copytree(tiny_model_dir, settings.models_dir / "tiny")
    rows = [
        {"anchor": "q", "positive": " ".join(["protein"] * 100)},
        {"anchor": "r", "positive": "p"},
    ]
    body = "".join(json.dumps(r) + "\n" for r in rows)
    response = upload(client, "long.jsonl", body, model="tiny")
    assert response.status_code == 201, response.text
    lengths = response.json()["stats"]["model_lengths"]
    assert (lengths["max_seq_length"], lengths["documents_over_max"]) == (64, 1)
    assert lengths["doc_tokens"]["max"] == 102  # [CLS] + 100 + [SEP]


def test_a_stored_upload_is_read_again_with_its_column_mapping(
    client: TestClient, settings: Settings
) -> None:
    body = "".join(json.dumps({"ask": f"q{i}", "reply": f"a{i}"}) + "\n" for i in range(3))
    dataset_id = upload(client, "qa.jsonl", body, columns="query=ask,positive=reply").json()["id"]
    factory = make_session_factory(make_engine(settings.db_url))
    with factory() as session:
        ds = catalog.load(session.get(DatasetRow, dataset_id))
    assert len(ds.qrels["train"]) == 3

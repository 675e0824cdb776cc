"""/v1/aliases through HTTP: the promotion gate, forced moves and their events, and alias
switches under concurrent /v1/embeddings and search traffic."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from core.jobs.kinds.index import IndexJob
from core.jobs.runner import run_job
from core.jobs.service import submit_job
from core.models.embedder import load_embedder
from core.settings import Settings
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import JobRow, ModelRow
from tests.conftest import build_tiny_model, create_key

TEXTS = ["protein folding in yeast", "vitamin D and bone density", "topic 1", "a short one"]


@pytest.fixture(scope="module")
def other_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second tiny model (another seed): its vectors differ from the first one's."""
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-b", seed=1)


def add_model(
    settings: Settings,
    source: Path,
    metrics: dict,
    project: str = "prj_default",
    kind: str = "finetuned",
) -> str:
    """A tuned model row with ``metrics``, its files copied under the models directory."""
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = ModelRow(project_id=project, reference="", kind=kind, path="", metrics=metrics)
        session.add(row)
        session.flush()
        row.reference = row.id
        row.path = str(shutil.copytree(source, settings.models_dir / row.id))
        return row.id


def build_index(settings: Settings, dataset_id: str, model_id: str) -> str:
    """An index job over the dataset with the model, run to completion in this process."""
    factory = make_session_factory(make_engine(settings.db_url))
    spec = {"dataset_id": dataset_id, "model": model_id, "kind": "flat"}
    job = submit_job(factory, IndexJob(type="index", spec=spec), enqueue=lambda *_: None)
    outcome = run_job(job.id, factory=factory, settings=settings, worker="t", enqueue=print)
    assert outcome == "succeeded"
    with factory() as session:
        return session.get(JobRow, job.id).result["index_id"]


def scores(after: float, before: float = 0.5, drop: float | None = None) -> dict:
    metrics: dict = {"before": {"ndcg@10": before}, "after": {"ndcg@10": after}}
    if drop is not None:
        metrics["forgetting"] = {"drop": {"ndcg@10": drop}}
    return metrics


def put(client: TestClient, name: str, **body: object):
    return client.put(f"/v1/aliases/{name}", json=body)


def test_the_gate_refuses_with_the_measured_figures_unless_forced(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    first = add_model(settings, tiny_model_dir, scores(0.60))
    worse = add_model(settings, tiny_model_dir, scores(0.58))
    forgets = add_model(settings, tiny_model_dir, scores(0.70, drop=0.05))
    better = add_model(settings, tiny_model_dir, scores(0.65, drop=0.01))

    created = put(client, "prod", model_id=first)
    assert created.status_code == 200, created.text
    assert created.json()["version"] == 1
    assert created.json()["figures"]["current_is"] == "the base model before fine-tuning"

    refused = put(client, "prod", model_id=worse)
    assert refused.status_code == 409, refused.text
    error = refused.json()["error"]
    assert error["code"] == "promotion_refused" and error["param"] == "model_id"
    assert "0.5800" in error["message"] and "0.6000" in error["message"]
    figures = error["figures"]
    assert (figures["candidate"], figures["current"]) == (0.58, 0.60)
    assert figures["current_model_id"] == first
    assert figures["gain"] == pytest.approx(-0.02)

    refused = put(client, "prod", model_id=forgets)
    assert refused.status_code == 409
    error = refused.json()["error"]
    assert "forgetting drop 0.0500" in error["message"] and "0.0200" in error["message"]
    assert (error["figures"]["forgetting_drop"], error["figures"]["max_forgetting_drop"]) == (
        0.05,
        0.02,
    )
    assert client.get("/v1/aliases/prod").json()["model_id"] == first  # nothing moved

    moved = put(client, "prod", model_id=better)
    assert moved.status_code == 200 and moved.json()["version"] == 2
    forced = put(client, "prod", model_id=worse, force=True)
    assert forced.status_code == 200 and forced.json()["model_id"] == worse

    events = client.get("/v1/aliases/prod/events").json()
    assert [(e["action"], e["model_id"], e["previous_model_id"]) for e in events] == [
        ("forced", worse, better),
        ("promoted", better, first),
        ("promoted", first, None),
    ]
    assert events[0]["forced"] and events[0]["actor_name"] == "test-admin"
    assert events[0]["figures"]["candidate"] == 0.58 and events[0]["figures"]["refusals"]
    assert client.get("/v1/aliases").json()["items"][0]["name"] == "prod"


def test_alias_mistakes_and_what_an_alias_protects(
    client: TestClient, settings: Settings, tiny_model_dir: Path, dataset_id: str
) -> None:
    model = add_model(settings, tiny_model_dir, scores(0.6))
    other = add_model(settings, tiny_model_dir, scores(0.7))
    index = build_index(settings, dataset_id, other)
    reranker = add_model(settings, tiny_model_dir, scores(0.9), kind="reranker")
    cases = [
        ("prod", {"model_id": reranker}, 422, "not_an_embedder"),
        ("mdl_x", {"model_id": model}, 422, "invalid_alias_name"),
        ("has.dot", {"model_id": model}, 422, "invalid_request"),
        ("prod", {"model_id": "mdl_missing"}, 404, "model_not_found"),
        ("prod", {"model_id": model, "index_id": index}, 422, "index_model_mismatch"),
        ("prod", {"model_id": model, "surprise": 1}, 422, "invalid_request"),
    ]
    for name, body, status, code in cases:
        response = client.put(f"/v1/aliases/{name}", json=body)
        assert (response.status_code, response.json()["error"]["code"]) == (status, code), body
    inference = {"Authorization": f"Bearer {create_key(settings, 'inference')}"}
    denied = client.put("/v1/aliases/prod", json={"model_id": model}, headers=inference)
    assert denied.status_code == 403
    assert put(client, "prod", model_id=other, index_id=index).status_code == 200
    for path in (f"/v1/models/{other}", f"/v1/datasets/{dataset_id}"):
        blocked = client.delete(path)
        assert blocked.status_code == 409 and blocked.json()["error"]["code"] == "alias_in_use"
    assert client.delete("/v1/aliases/prod").status_code == 204
    assert client.get("/v1/aliases/prod").json()["error"]["code"] == "alias_not_found"
    assert client.delete(f"/v1/models/{other}").status_code == 204
    assert client.get("/v1/aliases/prod/events").json()[0]["action"] == "deleted"


def test_another_projects_alias_and_models_are_invisible(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    model = add_model(settings, tiny_model_dir, scores(0.6))
    assert put(client, "prod", model_id=model).status_code == 200
    project = client.post("/v1/projects", json={"name": "acme"}).json()["id"]
    theirs = add_model(settings, tiny_model_dir, scores(0.9), project=project)
    headers = {"Authorization": f"Bearer {create_key(settings, 'user', project)}"}
    assert client.get("/v1/aliases", headers=headers).json()["items"] == []
    answer = client.post("/v1/embeddings", json={"model": "prod", "input": "x"}, headers=headers)
    assert answer.status_code == 404 and answer.json()["error"]["code"] == "model_not_found"
    refused = client.put("/v1/aliases/prod", json={"model_id": model}, headers=headers)
    assert refused.status_code == 404
    assert put(client, "prod", model_id=theirs).status_code == 404


def test_an_alias_switch_under_concurrent_traffic_never_answers_with_a_mix(
    client: TestClient,
    settings: Settings,
    tiny_model_dir: Path,
    other_model_dir: Path,
    dataset_id: str,
) -> None:
    """Clients embed and search through ``prod`` while it flips between two (model, index)
    pairs: every answer comes from one model of one pair, whole."""
    a = add_model(settings, tiny_model_dir, scores(0.6))
    b = add_model(settings, other_model_dir, scores(0.7))
    pairs = {a: build_index(settings, dataset_id, a), b: build_index(settings, dataset_id, b)}
    expected = {m: load_embedder(str(d)).encode(TEXTS, "document") for m, d in
                ((a, tiny_model_dir), (b, other_model_dir))}  # fmt: skip
    assert not np.allclose(expected[a], expected[b], atol=1e-2)
    assert put(client, "prod", model_id=a, index_id=pairs[a]).status_code == 200
    stop = threading.Event()

    def embed_until_stopped() -> list[tuple[str, np.ndarray]]:
        seen = []
        while not stop.is_set():
            response = client.post("/v1/embeddings", json={"model": "prod", "input": TEXTS})
            assert response.status_code == 200, response.text
            body = response.json()
            seen.append((body["model"], np.array([d["embedding"] for d in body["data"]])))
        return seen

    def search_until_stopped() -> list[tuple[str, str]]:
        seen = []
        while not stop.is_set():
            response = client.post("/v1/indexes/prod/search", json={"query": "topic 1"})
            assert response.status_code == 200, response.text
            seen.append((response.json()["model"], response.json()["index_id"]))
        return seen

    with ThreadPoolExecutor(6) as pool:
        embedders = [pool.submit(embed_until_stopped) for _ in range(4)]
        searchers = [pool.submit(search_until_stopped) for _ in range(2)]
        for flip in range(30):
            model = b if flip % 2 == 0 else a
            moved = put(client, "prod", model_id=model, index_id=pairs[model], force=True)
            assert moved.status_code == 200, moved.text
        stop.set()
        embedded = [answer for f in embedders for answer in f.result()]
        searched = [answer for f in searchers for answer in f.result()]
    assert {model for model, _ in embedded} == {a, b}
    for model, vectors in embedded:
        np.testing.assert_allclose(vectors, expected[model], atol=1e-4)
    assert set(searched) <= {(a, pairs[a]), (b, pairs[b])}
    assert len(set(searched)) == 2
    assert client.get("/v1/aliases/prod").json()["version"] == 31


def test_forgetting_a_compare_job_measured_refuses_the_promotion(
    client: TestClient, settings: Settings, tiny_model_dir: Path
) -> None:
    """A compare job keeps each fine-tune's forgetting with its model; the gate reads it."""
    from core.compare import MethodRun
    from core.jobs.kinds.compare import CompareJobSpec, record_forgetting

    current = add_model(settings, tiny_model_dir, scores(0.60))
    tuned = add_model(settings, tiny_model_dir, scores(0.70))
    assert put(client, "prod", model_id=current).status_code == 200
    spec = CompareJobSpec(dataset_id="ds_a", base_model="tiny", forgetting_dataset_id="ds_b")
    runs = [
        MethodRun("base", "succeeded", False, forgetting={"ndcg@10": 0.50, "recall@10": 0.6}),
        MethodRun("full", "succeeded", True, forgetting={"ndcg@10": 0.44, "recall@10": 0.6}),
    ]
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        record_forgetting(session, spec, "job_compare", runs, {"full": tuned})
    stored = client.get(f"/v1/models/{tuned}").json()["metrics"]["forgetting"]
    assert stored["drop"] == pytest.approx({"ndcg@10": 0.06, "recall@10": 0.0})
    assert (stored["dataset_id"], stored["compare_job_id"]) == ("ds_b", "job_compare")
    refused = put(client, "prod", model_id=tuned)
    assert refused.status_code == 409
    figures = refused.json()["error"]["figures"]
    assert figures["forgetting_drop"] == pytest.approx(0.06) and figures["gain"] > 0

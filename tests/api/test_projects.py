"""Tenancy: two projects × three roles × every route. A key sees only its project's rows; another
project's row answers exactly what a missing id answers; roles work as before within a project."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.main import create_app
from core.jobs.runner import run_job
from core.services.projects import create_project
from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import JobRow, ModelRow, new_id
from tests.api.conftest import beir_files
from tests.conftest import create_key

ROLES = ("admin", "user", "inference")
RANK = {"inference": 0, "user": 1, "admin": 2}
MISSING = {"dataset": "ds_0000000000000000", "job": "job_0000000000000000"}
MISSING |= {"model": "mdl_0000000000000000", "index": "idx_0000000000000000"}
MISSING |= {"alias": "live-missing"}

# (method, path, body, least role, status for a key of the owning project). Braces name the
# owning project's rows; {own} is a dataset of the caller's own project.
ITEM_ROUTES = [
    ("get", "/v1/datasets/{dataset}", None, "user", 200),
    ("get", "/v1/jobs/{job}", None, "user", 200),
    ("get", "/v1/jobs/{job}/events", None, "user", 200),
    ("get", "/v1/jobs/{job}/metrics", None, "user", 200),
    ("get", "/v1/jobs/{job}/children", None, "user", 200),
    ("get", "/v1/jobs/{job}/report", None, "user", 409),  # not a compare job
    ("get", "/v1/jobs/{job}/artifacts", None, "user", 200),
    ("get", "/v1/models/{model}/card", None, "inference", 200),
    ("get", "/v1/models/{model}", None, "inference", 200),
    ("get", "/v1/indexes/{index}", None, "inference", 200),
    ("post", "/v1/indexes/{index}/search", {"query": "topic 1"}, "inference", 200),
    ("post", "/v1/embeddings", {"model": "{model}", "input": "topic 1"}, "inference", 200),
    ("post", "/v1/embeddings", {"model": "{alias}", "input": "topic 1"}, "inference", 200),
    ("get", "/v1/aliases/{alias}", None, "inference", 200),
    ("get", "/v1/aliases/{alias}/events", None, "inference", 200),
    ("put", "/v1/aliases/{alias}", {"model_id": "{model}", "force": True}, "user", 200),
    # the upload has no negatives to correct: its own project hears "not a negative"
    (
        "post",
        "/v1/datasets/{dataset}/corrections",
        {"corrections": [{"query_id": "q0", "doc_id": "d1"}]},
        "user",
        422,
    ),
    # the project's model is an embedder: its own project hears "not a reranker"
    (
        "post",
        "/v1/rerank",
        {"model": "{model}", "query": "t", "documents": ["t"]},
        "inference",
        422,
    ),
    # and "not a late-interaction model" from the MaxSim scores
    (
        "post",
        "/v1/scores",
        {"model": "{model}", "pairs": [{"query": "t", "document": "t"}]},
        "inference",
        422,
    ),
]
DESTRUCTIVE_ROUTES = [  # last, in this order, for the owning project
    ("post", "/v1/jobs/{job}/cancel", None, "user", 200),
    ("delete", "/v1/aliases/{alias}", None, "user", 204),  # before its model can go
    ("delete", "/v1/models/{model}", None, "user", 204),
    ("delete", "/v1/datasets/{dataset}", None, "user", 204),
]
SUBMISSIONS = [  # jobs naming another project's rows: as missing as unknown ids
    {"type": "eval", "spec": {"dataset_id": "{dataset}", "model": "tiny"}},
    {"type": "eval", "spec": {"dataset_id": "{own}", "model": "{model}"}},
    {"type": "index", "spec": {"dataset_id": "{own}", "model": "{model}"}},
    {"type": "mine", "spec": {"dataset_id": "{dataset}", "model": "tiny"}},
    {"type": "quantize", "spec": {"dataset_id": "{dataset}", "model": "tiny"}},
    {"type": "quantize", "spec": {"dataset_id": "{own}", "model": "{model}"}},
    {"type": "finetune", "spec": {"dataset_id": "{own}", "base_model": "{model}"}},
    {"type": "nudge", "spec": {"dataset_id": "{own}", "model_from_job": "{job}"}},
    {"type": "nudge", "spec": {"dataset_id": "{own}", "model": "{model}"}},
    {"type": "compare", "spec": {"dataset_id": "{own}", "base_model": "{model}"}},
    {"type": "rerank_finetune", "spec": {"dataset_id": "{own}", "base_model": "{model}"}},
    {"type": "rerank_finetune", "spec": {"dataset_id": "{dataset}", "base_model": "tiny"}},
    {"type": "eval", "spec": {"dataset_id": "{own}", "model": "tiny", "reranker": "{model}"}},
    {
        "type": "compare",
        "spec": {"dataset_id": "{own}", "base_model": "tiny", "forgetting_dataset_id": "{dataset}"},
    },
]
LIST_ROUTES = [
    ("/v1/datasets", "user", "dataset"),
    ("/v1/jobs", "user", "job"),
    ("/v1/models", "inference", "model"),
    ("/v1/indexes", "inference", "index"),
]


@dataclass
class Project:
    id: str
    keys: dict[str, dict[str, str]]  # role -> headers
    rows: dict[str, str]  # dataset, job, model, index -> id


@pytest.fixture
def model_dir(settings: Settings, tiny_model_dir: Path) -> Path:
    return Path(shutil.copytree(tiny_model_dir, settings.models_dir / "tiny"))


@pytest.fixture
def app(settings: Settings, model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


def fill(settings: Settings, app: TestClient, name: str, model_dir: Path) -> Project:
    """A project with a key per role, a dataset, a queued eval job, a tuned model, an index
    its index job built (run here, as a worker would) and a dataset its mine job made."""
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    with transaction(factory) as session:
        project_id = create_project(session, name=name).id
    keys = {r: {"Authorization": f"Bearer {create_key(settings, r, project_id)}"} for r in ROLES}
    user = keys["user"]
    upload = app.post("/v1/datasets", files=beir_files(), data={"name": name}, headers=user)
    dataset = upload.json()["id"]
    jobs = {
        kind: app.post(
            "/v1/jobs",
            json={"type": kind, "spec": {"dataset_id": dataset, "model": "tiny"}},
            headers=user,
        ).json()["id"]
        for kind in ("eval", "index", "mine")
    }
    for kind in ("index", "mine"):
        assert (
            run_job(
                jobs[kind], factory=factory, settings=settings, worker="t", enqueue=lambda *_: None
            )
            == "succeeded"
        )
    tuned = Path(shutil.copytree(model_dir, settings.models_dir / f"tuned-{name}"))
    (tuned / "README.md").write_text(f"# tuned-{name}\n", "utf-8")  # its model card
    with transaction(factory) as session:  # a fine-tune's model row, without the training
        model = ModelRow(
            id=new_id("mdl"),
            project_id=project_id,
            kind="finetuned",
            method="full",
            base_model="tiny",
            path=str(tuned),
            dataset_id=dataset,
        )
        model.reference = model.id
        session.add(model)
        index = session.get(JobRow, jobs["index"]).result["index_id"]
        mined = repos.dataset_from_job(session, job_id=jobs["mine"]).id
    engine.dispose()
    alias = f"live-{name}"  # no validation figures to gate on: forced
    body = {"model_id": model.id, "force": True}
    assert app.put(f"/v1/aliases/{alias}", json=body, headers=user).status_code == 200
    rows = {"dataset": dataset, "job": jobs["eval"], "model": model.id, "index": index}
    rows["alias"] = alias
    return Project(project_id, keys, rows | {"mined": mined})


@pytest.fixture
def projects(settings: Settings, app: TestClient, model_dir: Path) -> tuple[Project, Project]:
    return fill(settings, app, "alpha", model_dir), fill(settings, app, "beta", model_dir)


def render(value: object, rows: dict[str, str], own: str) -> object:
    """``value`` with {dataset}, {job}, ... replaced by ``rows`` and {own} by ``own``."""
    if isinstance(value, dict):
        return {k: render(v, rows, own) for k, v in value.items()}
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: own if m[1] == "own" else rows[m[1]], value)
    return value


def call(app: TestClient, headers: dict, method: str, path: str, body: object, rows, own: str):
    url = render(path, rows, own)
    return app.request(method, url, json=render(body, rows, own), headers=headers)


def same_answer(foreign, missing, rows: dict[str, str]) -> None:
    """Two responses alike but for the ids they name."""
    assert foreign.status_code == missing.status_code, (foreign.text, missing.text)
    text = foreign.text
    for what, row_id in rows.items():
        if what in MISSING:
            text = text.replace(row_id, MISSING[what])
    assert text == missing.text


def test_another_projects_rows_answer_as_missing_ids(
    app: TestClient, projects: tuple[Project, Project]
) -> None:
    a, b = projects
    own = b.rows["dataset"]
    for role in ROLES:
        headers = b.keys[role]
        routes = ITEM_ROUTES + DESTRUCTIVE_ROUTES
        routes += [("post", "/v1/jobs", body, "user", 202) for body in SUBMISSIONS]
        for method, path, body, least, _ in routes:
            foreign = call(app, headers, method, path, body, a.rows, own)
            missing = call(app, headers, method, path, body, MISSING, own)
            same_answer(foreign, missing, a.rows)
            allowed = (404,) if RANK[role] >= RANK[least] else (403, 404)  # role checked first
            assert foreign.status_code in allowed, (method, path, role)
    # Nothing of A's changed: the cancel and the deletes above did not reach it.
    user = a.keys["user"]
    assert app.get(f"/v1/jobs/{a.rows['job']}", headers=user).json()["status"] == "queued"
    for path in ("/v1/datasets/{dataset}", "/v1/models/{model}", "/v1/indexes/{index}"):
        assert call(app, user, "get", path, None, a.rows, "").status_code == 200


def test_lists_show_only_the_callers_project(
    app: TestClient, projects: tuple[Project, Project]
) -> None:
    for mine, other in (projects, projects[::-1]):
        for path, least, what in LIST_ROUTES:
            for role in ROLES:
                response = app.get(path, headers=mine.keys[role])
                if RANK[role] < RANK[least]:
                    assert response.status_code == 403
                    continue
                body = response.json()
                ids = {item["id"] for item in body.get("items", body.get("data", []))}
                assert mine.rows[what] in ids and other.rows[what] not in ids, (path, role)
        datasets = app.get("/v1/datasets", headers=mine.keys["user"]).json()
        assert {d["id"] for d in datasets["items"]} == {mine.rows["dataset"], mine.rows["mined"]}
        assert datasets["total"] == 2  # the upload and what the mine job made
        jobs = app.get("/v1/jobs", headers=mine.keys["user"]).json()
        assert jobs["total"] == 3  # eval, index, mine
    models = app.get("/v1/models", headers=projects[1].keys["inference"]).json()["data"]
    assert [m["id"] for m in models if m["kind"] == "finetuned"] == [projects[1].rows["model"]]


def test_own_project_keeps_the_role_semantics(
    app: TestClient, projects: tuple[Project, Project]
) -> None:
    a, _ = projects
    own = a.rows["dataset"]
    for method, path, body, least, status in ITEM_ROUTES:
        for role in ROLES:
            response = call(app, a.keys[role], method, path, body, a.rows, own)
            want = status if RANK[role] >= RANK[least] else 403
            assert response.status_code == want, (method, path, role, response.text)
    for method, path, body, least, status in DESTRUCTIVE_ROUTES:
        if least == "user":
            denied = call(app, a.keys["inference"], method, path, body, a.rows, own)
            assert denied.status_code == 403, (method, path)
        done = call(app, a.keys["user"], method, path, body, a.rows, own)
        assert done.status_code == status, (method, path, done.text)


def test_shared_base_models_serve_every_project(
    app: TestClient, projects: tuple[Project, Project]
) -> None:
    for project in projects:
        body = {"model": "tiny", "input": ["topic 1"]}
        response = app.post("/v1/embeddings", json=body, headers=project.keys["inference"])
        assert response.status_code == 200, response.text
        job = {"type": "eval", "spec": {"dataset_id": project.rows["dataset"], "model": "tiny"}}
        assert app.post("/v1/jobs", json=job, headers=project.keys["user"]).status_code == 202


def test_compare_children_stay_in_the_project(
    app: TestClient, projects: tuple[Project, Project]
) -> None:
    a, b = projects
    spec = {"dataset_id": a.rows["dataset"], "base_model": "tiny", "methods": ["base"]}
    job = app.post("/v1/jobs", json={"type": "compare", "spec": spec}, headers=a.keys["user"])
    assert job.status_code == 202, job.text
    children = app.get(f"/v1/jobs/{job.json()['id']}/children", headers=a.keys["user"]).json()
    assert len(children) == 1
    child = children[0]["id"]
    assert app.get(f"/v1/jobs/{child}", headers=a.keys["user"]).status_code == 200
    assert app.get(f"/v1/jobs/{child}", headers=b.keys["user"]).status_code == 404


# Admin routes -------------------------------------------------------------------------------


def test_admin_keys_manage_projects_and_keys(app: TestClient, settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {create_key(settings, 'admin')}"}
    made = app.post("/v1/projects", json={"name": "gamma"}, headers=admin)
    assert made.status_code == 201 and made.json()["id"].startswith("prj_")
    again = app.post("/v1/projects", json={"name": "gamma"}, headers=admin)
    assert again.status_code == 409 and again.json()["error"]["code"] == "project_exists"
    names = {p["name"] for p in app.get("/v1/projects", headers=admin).json()["items"]}
    assert names == {"default", "gamma"}
    body = {"name": "ci", "role": "user", "project_id": made.json()["id"]}
    created = app.post("/v1/keys", json=body, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert created.json()["project_id"] == made.json()["id"]
    gamma = {"Authorization": f"Bearer {key}"}
    app.post("/v1/datasets", files=beir_files(), headers=admin)  # in the admin's project
    assert app.get("/v1/datasets", headers=gamma).json()["total"] == 0
    assert app.get("/v1/datasets", headers=admin).json()["total"] == 1
    raw = [("files", ("notes.txt", b"Insulin lowers blood sugar. " * 8))]
    documents = app.post("/v1/documents", files=raw, headers=gamma)
    assert documents.status_code == 201, documents.text  # raw documents: the caller's project
    assert app.get("/v1/datasets", headers=gamma).json()["total"] == 1
    assert app.get("/v1/datasets", headers=admin).json()["total"] == 1
    listed = app.get("/v1/keys", headers=admin).json()["items"]
    assert {k["name"] for k in listed} == {"test-admin", "ci"}
    assert all("key" not in k and "secret_hash" not in k for k in listed)
    only = app.get("/v1/keys", params={"project_id": made.json()["id"]}, headers=admin).json()
    assert [k["id"] for k in only["items"]] == [created.json()["id"]]
    unknown = app.post("/v1/keys", json={**body, "project_id": "prj_nope"}, headers=admin)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "project_not_found"
    assert app.delete(f"/v1/keys/{created.json()['id']}", headers=admin).status_code == 204
    assert app.get("/v1/datasets", headers=gamma).status_code == 401  # at once, not in 10 s
    assert app.delete("/v1/keys/nope", headers=admin).status_code == 404


def test_only_admin_keys_reach_the_admin_routes(app: TestClient, settings: Settings) -> None:
    admin_routes = [
        ("post", "/v1/projects", {"name": "delta"}),
        ("get", "/v1/projects", None),
        ("post", "/v1/keys", {"name": "x", "role": "user"}),
        ("get", "/v1/keys", None),
        ("delete", "/v1/keys/whatever", None),
    ]
    paths = {p for p in app.get("/openapi.json").json()["paths"] if "/keys" in p or "/proj" in p}
    assert paths == {path.replace("whatever", "{key_id}") for _, path, _ in admin_routes}
    for role in ("user", "inference"):
        headers = {"Authorization": f"Bearer {create_key(settings, role)}"}
        for method, path, body in admin_routes:
            response = app.request(method, path, json=body, headers=headers)
            assert response.status_code == 403, (role, method, path)
            assert response.json()["error"]["code"] == "forbidden"


def test_the_matrix_covers_every_route(app: TestClient) -> None:
    """A new route must join the matrix above (or the admin routes, health)."""
    covered = {(m, p) for m, p, *_ in ITEM_ROUTES + DESTRUCTIVE_ROUTES}
    covered |= {("post", "/v1/jobs"), ("post", "/v1/datasets"), ("post", "/v1/documents")}
    covered |= {("get", path) for path, *_ in LIST_ROUTES}
    covered.add(("get", "/v1/aliases"))  # names, not ids: test_aliases checks it per project
    names = {"dataset_id": "dataset", "job_id": "job", "model_id": "model", "index_id": "index"}
    names["name"] = "alias"
    for path, operations in app.get("/openapi.json").json()["paths"].items():
        if path in ("/healthz", "/readyz") or path.startswith(("/v1/keys", "/v1/projects")):
            continue
        template = re.sub(r"\{(\w+)\}", lambda m: "{" + names[m[1]] + "}", path)
        for method in operations:
            assert (method, template) in covered, (method, path)


def test_hostile_ids_on_the_admin_routes_are_422(app: TestClient, settings: Settings) -> None:
    admin = {"Authorization": f"Bearer {create_key(settings, 'admin')}"}
    for method, path, kwargs in (
        ("post", "/v1/keys", {"json": {"name": "x", "project_id": "prj_\x00"}}),
        ("get", "/v1/keys", {"params": {"project_id": "prj_\x00"}}),
        ("delete", "/v1/keys/a%00b", {}),
        ("post", "/v1/projects", {"json": {"name": "../x"}}),
    ):
        response = app.request(method, path, headers=admin, **kwargs)
        assert response.status_code == 422, (method, path, response.text)

"""What the dashboard needs beyond the other routes: its static files (no key, a strict
content security policy), a model card as escaped HTML, a job's artifacts."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from core.settings import Settings
from core.store import repos
from core.store.db import make_engine, make_session_factory, transaction
from core.store.tables import ModelRow

NO_KEY = {"Authorization": ""}
BASE = "sentence-transformers/all-MiniLM-L6-v2"


def test_the_dashboard_is_served_without_a_key_and_only_from_this_origin(
    client: TestClient,
) -> None:
    assert client.get("/ui", headers=NO_KEY, follow_redirects=False).headers["location"] == "/ui/"
    page = client.get("/ui/", headers=NO_KEY)
    assert page.status_code == 200 and "<title>EmbedTune</title>" in page.text
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy
    assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
    for asset in ("app.js", "style.css", "vendor/chart-4.6.1.umd.min.js"):
        assert client.get(f"/ui/{asset}", headers=NO_KEY).status_code == 200, asset
    assert "Chart.js v4.6.1" in client.get("/ui/vendor/chart-4.6.1.umd.min.js").text
    assert "MIT License" in client.get("/ui/vendor/chart-4.6.1.LICENSE.md").text
    assert client.get("/ui/../core/settings.py", headers=NO_KEY).status_code == 404


def test_a_model_card_renders_to_html_with_raw_html_escaped(
    client: TestClient, settings: Settings, tmp_path: Path
) -> None:
    model_dir = tmp_path / "tuned"
    model_dir.mkdir()
    factory = make_session_factory(make_engine(settings.db_url))
    with transaction(factory) as session:
        row = repos.upsert_by_job(
            session,
            ModelRow,
            job_id=None,
            reference="x",
            kind="finetuned",
            method="full",
            base_model="b",
            path=str(model_dir),
        )
        model_id = row.id
    missing = client.get(f"/v1/models/{model_id}/card")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "no_card"
    card = "# tuned\n\n| metric | after |\n|---|---|\n| ndcg@10 | 0.7 |\n\n<script>x()</script>\n"
    (model_dir / "README.md").write_text(card, "utf-8")
    body = client.get(f"/v1/models/{model_id}/card").json()
    assert body["markdown"] == card
    assert "<h1>tuned</h1>" in body["html"] and "<td>ndcg@10</td>" in body["html"]
    assert "<script>" not in body["html"] and "&lt;script&gt;" in body["html"]
    assert client.get("/v1/models/mdl_unknown/card").status_code == 404


def test_a_jobs_artifacts_are_listed_by_path_and_size(
    client: TestClient, settings: Settings, dataset_id: str
) -> None:
    job = client.post(
        "/v1/jobs", json={"type": "eval", "spec": {"dataset_id": dataset_id, "model": BASE}}
    ).json()
    assert client.get(f"/v1/jobs/{job['id']}/artifacts").json() == []
    folder = settings.jobs_dir / job["id"]
    (folder / "model").mkdir(parents=True)
    (folder / "report.json").write_text("{}")
    (folder / "model" / "README.md").write_text("# m\n")
    listed = client.get(f"/v1/jobs/{job['id']}/artifacts").json()
    assert listed == [{"path": "model/README.md", "bytes": 4}, {"path": "report.json", "bytes": 2}]

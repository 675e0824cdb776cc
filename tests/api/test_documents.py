"""Raw documents through HTTP: upload (files and an archive), the ingest report, bad files
listed with reasons, then a synthesize job whose dataset the other jobs accept."""

from __future__ import annotations

import io
import json
import zipfile

from fastapi.testclient import TestClient

from core.jobs.runner import run_job
from core.settings import Settings
from core.store.db import make_engine, make_session_factory
from tests.core.test_ingest import make_docx, make_pdf, prose

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def document_parts(tmp_path) -> list[tuple[str, tuple[str, bytes]]]:
    pdf = make_pdf(
        tmp_path / "paper.pdf",
        [prose(20, "insulin"), prose(20, "glucose")],
        title="Insulin and glucose",
    )
    docx = make_docx(tmp_path / "memo.docx", "Malaria memo", [prose(15, "malaria")])
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("pages/a.html", f"<title>Asthma</title><p>{prose(15, 'asthma')}</p>")
        zf.writestr("pages/b.md", f"# Sepsis\n\n{prose(15, 'sepsis')}")
        zf.writestr("pages/scan.pdf", make_pdf(tmp_path / "scan.pdf", [""]).read_bytes())
    records = "".join(
        json.dumps({"id": f"r{i}", "title": f"Record {i} on gout", "text": prose(6, f"gout {i}")})
        + "\n"
        for i in range(12)
    )
    return [
        ("files", ("paper.pdf", pdf.read_bytes())),
        ("files", ("memo.docx", docx.read_bytes())),
        ("files", ("notes.txt", prose(30, "statins").encode())),
        ("files", ("records.jsonl", records.encode())),
        ("files", ("bad.txt", b"\xff\xfe\xfa not utf-8")),
        ("files", ("pages.zip", archive.getvalue())),
    ]


def test_an_upload_of_documents_is_a_chunked_corpus_with_its_report(
    client: TestClient, tmp_path
) -> None:
    response = client.post(
        "/v1/documents",
        files=document_parts(tmp_path),
        data={"name": "handbook", "model": MODEL, "max_tokens": "64"},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    ingest = body["stats"]["ingest"]
    assert {s["file"]: s["code"] for s in ingest["skipped"]} == {
        "bad.txt": "undecodable",
        "extracted/pages/scan.pdf": "no_text_layer",
    }
    assert ingest["documents"] == 17 and ingest["pages"] == 18
    assert ingest["chunks"] == body["stats"]["documents"] > ingest["documents"]
    assert ingest["tokens_per_chunk"]["p100"] <= 64 == ingest["token_limit"]
    assert body["format"] == "beir" and body["stats"]["queries"] == 0
    assert response.headers["Location"] == f"/v1/datasets/{body['id']}"


def test_uploads_that_give_no_document_or_bad_options_are_422(client: TestClient) -> None:
    nothing = client.post("/v1/documents", files=[("files", ("a.xlsx", b"PK.."))])
    assert nothing.status_code == 422
    assert nothing.json()["error"]["code"] == "no_documents"
    assert "a.xlsx: unsupported_type" in nothing.json()["error"]["message"]
    small = client.post(
        "/v1/documents", files=[("files", ("a.txt", b"text"))], data={"max_tokens": "4"}
    )
    assert small.status_code == 422
    path = client.post(
        "/v1/documents", files=[("files", ("a.txt", b"text"))], data={"model": "../../etc"}
    )
    assert path.status_code == 422 and path.json()["error"]["param"] == "model"


def test_a_synthesize_job_makes_a_dataset_the_other_jobs_accept(
    client: TestClient, settings: Settings, tmp_path
) -> None:
    uploaded = client.post(
        "/v1/documents", files=document_parts(tmp_path), data={"max_tokens": "64"}
    ).json()
    spec = {
        "dataset_id": uploaded["id"],
        "options": {
            "generators": ["title", "inverse_cloze"],
            "round_trip_k": 0,
            "val_fraction": 0.2,
            "test_fraction": 0.2,
        },
    }
    submitted = client.post("/v1/jobs", json={"type": "synthesize", "spec": spec})
    assert submitted.status_code == 202, submitted.text
    job_id = submitted.json()["id"]
    factory = make_session_factory(make_engine(settings.db_url))
    assert run_job(job_id, factory=factory, settings=settings, worker="t", enqueue=print) == (
        "succeeded"
    )
    job = client.get(f"/v1/jobs/{job_id}").json()
    result = job["result"]
    assert result["candidates"]["title"] > 0 and result["candidates"]["inverse_cloze"] > 0
    assert set(result["removed"]) >= {"duplicate", "copies_chunk", "round_trip"}
    made = client.get(f"/v1/datasets/{result['dataset_id']}").json()
    assert made["source_job_id"] == job_id
    assert set(made["stats"]["splits"]) == {"train", "val", "test"}
    assert made["stats"]["synthesis"]["kept_after"]["round_trip"] == made["stats"]["queries"]
    for follow_up in (
        {"type": "mine", "spec": {"dataset_id": made["id"], "model": MODEL}},
        {"type": "eval", "spec": {"dataset_id": made["id"], "model": MODEL, "split": "test"}},
        {
            "type": "finetune",
            "spec": {"dataset_id": made["id"], "base_model": MODEL, "val_split": "val"},
        },
        {
            "type": "compare",
            "spec": {"dataset_id": made["id"], "base_model": MODEL, "methods": ["base", "full"]},
        },
    ):
        accepted = client.post("/v1/jobs", json=follow_up)
        assert accepted.status_code == 202, accepted.text


def test_bad_synthesize_specs_are_422_naming_the_field(client: TestClient, dataset_id) -> None:
    for options, param in (
        ({"generators": ["telepathy"]}, "spec"),
        ({"round_trip_k": -1}, "round_trip_k"),
        ({"prompt_template": "no placeholders"}, "prompt_template"),
    ):
        spec = {"dataset_id": dataset_id, "options": options}
        response = client.post("/v1/jobs", json={"type": "synthesize", "spec": spec})
        assert response.status_code == 422, response.text
        assert param in str(response.json()["error"]["param"])

"""The dashboard (/ui) in Chromium against a real API server and a real worker: sign-in by
keyboard, labelled forms, uploads and their errors, an eval to succeeded, a fine-tune's loss
chart, the compare page, Try it, cancel; and the live /metrics of the API and the worker."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from core.settings import Settings
from tests.conftest import SAMPLE
from tests.ui.conftest import sign_in, wait_job

JOB_TIMEOUT_MS = 240_000
QUICK = {"epochs": 2, "batch_size": 4, "max_seq_length": 32, "logging_steps": 1}
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter((el) => el.offsetParent !== null)
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
  .map((el) => el.id || el.outerHTML)"""
CHART_POINTS = "(sel) => Chart.getChart(document.querySelector(sel)).data.datasets[0].data.length"


def submit_form(tab: Page, type: str, dataset_id: str, model: str, extra: dict | None = None):
    """Fill the Jobs page's form and submit it; returns the new job's id."""
    tab.select_option("#job-type", type)
    tab.select_option("#job-dataset", dataset_id)
    tab.fill("#job-model", model)
    tab.fill("#job-extra", json.dumps(extra) if extra else "")
    tab.click("#job-form button[type=submit]")
    link = tab.locator("#job-form [role=status] a")
    expect(link).to_be_visible()
    return link.inner_text()


def test_sign_in_by_keyboard_and_every_field_has_a_label(
    page: Page, key: str, sample_id: str, shots: Path
) -> None:
    page.goto("/ui/")
    expect(page.locator("#login")).to_be_visible()
    assert page.evaluate(UNLABELLED) == []
    for _ in range(12):  # skip link, the five pages, then the key field
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "api-key":
            break
    assert page.evaluate("document.activeElement.id") == "api-key"
    page.keyboard.type("et_wrong_key")
    page.keyboard.press("Enter")
    expect(page.locator("#login-error")).to_contain_text("refused")
    page.screenshot(path=shots / "01-sign-in.png")
    page.keyboard.type(key)
    page.keyboard.press("Enter")
    expect(page.locator("#job-form")).to_be_visible()
    # Kept for this tab only: in session storage, never in the URL or a cookie.
    assert page.evaluate("sessionStorage.getItem('embedtune.api_key')") == key
    assert page.evaluate("document.cookie") == "" and key not in page.url
    for where in ("#/jobs", "#/datasets", "#/models", "#/try", "#/compare"):
        page.goto(f"/ui/{where}")
        expect(page.locator("body")).to_have_attribute("data-page", where[2:])
        assert page.evaluate(UNLABELLED) == [], where
    page.goto("/ui/#/jobs")
    page.focus("#job-type")
    page.keyboard.press("ArrowDown")  # a select is driven by the keyboard alone
    assert page.input_value("#job-type") == "finetune"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "job-dataset"


def test_an_upload_with_a_bad_line_shows_file_line_and_field(
    page: Page, key: str, shots: Path
) -> None:
    sign_in(page, key, "#/datasets")
    bad = b'{"query": "a", "pos": ["b"]}\n{"query": "c", "pos": [}\n'
    page.set_input_files(
        "#upload-files", files=[{"name": "pairs.jsonl", "mimeType": "text/plain", "buffer": bad}]
    )
    page.click("#upload-form button[type=submit]")
    errors = page.locator("#upload-errors")
    expect(errors).to_be_visible()
    row = errors.locator("tbody tr").first
    expect(row.locator("td").nth(0)).to_have_text("pairs.jsonl")
    expect(row.locator("td").nth(1)).to_have_text("2")
    expect(row.locator("td").nth(3)).to_have_text("bad_json")
    page.screenshot(path=shots / "02-upload-error.png", full_page=True)


def test_a_dropped_folder_uploads_and_its_page_shows_stats_and_histograms(
    page: Page, key: str, shots: Path
) -> None:
    sign_in(page, key, "#/datasets")
    files = {
        str(p.relative_to(SAMPLE)): p.read_text("utf-8")
        for p in sorted(SAMPLE.rglob("*"))
        if p.suffix in (".jsonl", ".tsv")
    }
    page.evaluate(
        """(files) => {
          const dt = new DataTransfer();
          for (const [name, body] of Object.entries(files)) dt.items.add(new File([body], name));
          document.getElementById('drop-zone').dispatchEvent(
            new DragEvent('drop', {dataTransfer: dt, bubbles: true, cancelable: true}));
        }""",
        files,
    )
    expect(page.locator("#upload-chosen")).to_contain_text("qrels/test.tsv")
    page.fill("#upload-name", "dropped-sample")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-result [role=status]")).to_contain_text("2000 documents")
    page.click("#dataset-list a:text('dropped-sample')")
    expect(page.locator("#page h1")).to_have_text("Dataset dropped-sample")
    expect(page.locator("tr:has-text('queries without judgments') td.num")).to_have_text(
        re.compile(r"^\d+$")
    )
    # The sample's data checks: test claims 870 and 1292 have train claims' texts.
    leaks = page.locator("tr:has-text('test_query_in_train')")
    expect(leaks.locator("td.num")).to_have_text("2")
    expect(leaks).to_contain_text("870 ~ 871")
    page.wait_for_function("() => document.querySelectorAll('canvas').length === 2")
    assert page.evaluate(CHART_POINTS, "canvas") == 10  # length bins
    page.screenshot(path=shots / "03-dataset.png", full_page=True)


def test_an_eval_on_the_sample_succeeds_and_shows_its_metric_table(
    page: Page, key: str, sample_id: str, tiny_ref: str, shots: Path
) -> None:
    sign_in(page, key)
    job_id = submit_form(page, "eval", sample_id, tiny_ref)
    page.click(f"#job-form a:text('{job_id}')")
    expect(page.locator("#job-head .status")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)
    table = page.locator("#eval-metrics table")
    expect(table).to_contain_text("ndcg@10")
    value = table.locator("tr:has(td:text-is('ndcg@10')) td.num").inner_text()
    assert 0.0 <= float(value) <= 1.0
    expect(page.locator("#job-events")).to_contain_text("nDCG@10")
    page.screenshot(path=shots / "04-eval-job.png", full_page=True)
    page.goto("/ui/#/jobs")
    expect(page.locator(f"#job-list tr:has-text('{job_id}') .status")).to_have_text("succeeded")
    page.screenshot(path=shots / "05-jobs.png", full_page=True)


def test_a_finetune_draws_its_loss_chart_and_its_model_shows_a_card(
    page: Page, key: str, small_id: str, tiny_ref: str, shots: Path
) -> None:
    sign_in(page, key)
    job_id = submit_form(page, "finetune", small_id, tiny_ref, {"params": QUICK})
    page.goto(f"/ui/#/jobs/{job_id}")
    expect(page.locator("#job-head .status")).to_have_text("succeeded", timeout=JOB_TIMEOUT_MS)
    page.wait_for_selector("#loss-chart canvas")
    assert page.evaluate(CHART_POINTS, "#loss-chart canvas") > 1
    head = page.locator("#job-head")
    expect(head).not_to_contain_text("ETA")  # nothing stale once ended: no ETA, the last step
    expect(head).to_contain_text(re.compile(r"train (\d+)/\1(?!\d)"))
    expect(page.locator("table:has-text('Evaluation metrics by step')")).to_be_visible()
    expect(page.locator("table:has-text('README.md')")).to_be_visible()  # artifacts
    page.screenshot(path=shots / "06-finetune-job.png", full_page=True)
    page.click("a[href^='#/models/mdl_']")
    expect(page.locator("#model-card h1")).to_be_visible()
    expect(page.locator("table:has-text('Validation, before and after')")).to_contain_text(
        "ndcg@10"
    )
    page.screenshot(path=shots / "07-model.png", full_page=True)
    page.goto("/ui/#/models")
    expect(page.locator("#model-list")).to_contain_text("finetuned")
    page.screenshot(path=shots / "08-models.png", full_page=True)


def test_the_compare_page_draws_a_chart_per_metric_and_lists_query_changes(
    page: Page, key: str, client: httpx.Client, sample_id: str, tiny_ref: str, shots: Path
) -> None:
    spec = {"dataset_id": sample_id, "base_model": tiny_ref, "methods": ["base", "nudge-n"]}
    job = client.post("/v1/jobs", json={"type": "compare", "spec": spec}).json()
    assert wait_job(client, job["id"])["status"] == "succeeded"
    report = client.get(f"/v1/jobs/{job['id']}/report").json()
    nudged = next(r for r in report["rows"] if r["method"] == "nudge-n")
    changed = (nudged["top_gains"] or nudged["top_losses"])[0]
    sign_in(page, key, f"#/compare/{job['id']}")
    expect(page.locator("#compare-table")).to_contain_text("nudge-n")
    charts = page.locator("#compare-charts canvas")
    expect(charts).to_have_count(len(report["metrics"]))
    assert page.evaluate(CHART_POINTS, "#compare-charts canvas") == 2  # base, nudge-n
    changes = page.locator("#query-changes")
    expect(changes).to_contain_text(changed["text"])
    expect(changes).to_contain_text(changed["top_after"][0]["id"])
    page.screenshot(path=shots / "09-compare.png", full_page=True)


def test_try_it_searches_two_indexes_side_by_side(
    page: Page,
    key: str,
    server: str,
    client: httpx.Client,
    sample_id: str,
    tiny_ref: str,
    shots: Path,
) -> None:
    spec = {"dataset_id": sample_id, "model": tiny_ref}
    wanted = [("index", spec)]
    if not any(i["method"] != "base" for i in client.get("/v1/indexes").json()["items"]):
        wanted.append(("nudge", spec))  # the compare test's NUDGE child made one already
    for type, body in wanted:
        job = client.post("/v1/jobs", json={"type": type, "spec": body}).json()
        assert wait_job(client, job["id"])["status"] == "succeeded"
    methods = {i["method"] for i in client.get("/v1/indexes").json()["items"]}
    assert "base" in methods and len(methods) >= 2
    sign_in(page, key, "#/try")
    page.fill("#try-query", "vitamin D deficiency and bone density")
    page.press("#try-query", "Enter")
    sides = page.locator("#try-results table")
    expect(sides).to_have_count(2, timeout=90_000)  # the first search loads the model
    expect(sides.nth(0).locator("tbody tr")).to_have_count(5)
    expect(sides.nth(1).locator("tbody tr")).to_have_count(5)
    page.screenshot(path=shots / "10-try-it.png", full_page=True)
    searched = re.search(
        r"^embedtune_search_queries_total (\S+)$", httpx.get(f"{server}/metrics").text, re.M
    )
    assert searched and float(searched[1]) >= 2


def test_cancel_from_the_job_page_shows_progress_then_cancelled(
    page: Page, key: str, client: httpx.Client, small_id: str, tiny_ref: str, shots: Path
) -> None:
    long = {**QUICK, "epochs": 500, "batch_size": 4}
    spec = {"dataset_id": small_id, "base_model": tiny_ref, "params": long}
    job = client.post("/v1/jobs", json={"type": "finetune", "spec": spec}).json()
    sign_in(page, key, f"#/jobs/{job['id']}")
    head = page.locator("#job-head")
    expect(head).to_contain_text(re.compile(r"train \d+/\d+ · ETA"), timeout=JOB_TIMEOUT_MS)
    page.screenshot(path=shots / "11-running-job.png", full_page=True)
    page.click(f"button[aria-label='Cancel job {job['id']}']")
    expect(head.locator(".status")).to_have_text("cancelled", timeout=60_000)
    expect(head.locator("button")).to_have_count(0)


def test_metrics_of_the_api_and_the_worker_after_the_jobs(
    server: str, client: httpx.Client, e2e_settings: Settings
) -> None:
    # The API is on loopback, so /metrics needs no key there (EMBEDTUNE_METRICS_ACCESS).
    api = httpx.get(f"{server}/metrics").text
    counted = 0
    for type in ("eval", "index", "finetune", "compare"):
        for state in ("succeeded", "cancelled"):
            total = client.get("/v1/jobs", params={"type": type, "status": state}).json()["total"]
            found = re.search(rf'embedtune_jobs\{{state="{state}",type="{type}"\}} (\S+)', api)
            assert found and float(found[1]) >= total  # every project's, this one's included
            counted += total
    assert counted > 0
    assert 'embedtune_http_requests_total{method="GET",route="/v1/jobs/{job_id}"' in api
    port = e2e_settings.worker_metrics_port
    worker = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    assert re.search(
        r'embedtune_job_duration_seconds_count\{outcome="succeeded",type="\w+"\} [1-9]', worker
    )
    assert re.search(r"embedtune_job_texts_encoded_total [1-9]", worker)
    assert re.search(r"embedtune_model_loads_total [1-9]", worker)

// EmbedTune dashboard: a small single-page app over the JSON API (/v1/...). No build step.
// The API key lives in sessionStorage and travels in the Authorization header only.
"use strict";

const KEY = "embedtune.api_key";
const POLL_MS = 1500;
const TERMINAL = ["succeeded", "failed", "cancelled"];
const JOB_TYPES = ["eval", "finetune", "compare", "index", "mine", "nudge"];
const STATES = ["queued", "running", "succeeded", "failed", "cancelled"];
const BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2";

// --- helpers -------------------------------------------------------------------------------

/** An element with attributes (on* as listeners) and children (strings become text). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const fmt = (v, digits = 4) => (typeof v === "number" ? v.toFixed(digits) : v ?? "—");
const pts = (v) => (typeof v === "number" ? `${v >= 0 ? "+" : ""}${v.toFixed(1)}` : "—");
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const secs = (s) => {
  if (typeof s !== "number") return "—";
  if (s < 90) return `${Math.round(s)} s`;
  if (s < 5400) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};

function table(headers, rows, caption) {
  return h("table", {},
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) =>
      c instanceof Node && c.tagName === "TD" ? c : h("td", {}, c))))));
}
const num = (v, digits) => h("td", { class: "num" }, fmt(v, digits));

class ApiError extends Error {
  constructor(status, body) {
    super(body?.error?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

/** Call the JSON API with the stored key; throws ApiError on a non-2xx answer. */
async function api(path, { method = "GET", json, form } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY) || ""}` };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form) body = form;
  const res = await fetch(path, { method, headers, body });
  if (res.status === 204) return null;
  const type = res.headers.get("content-type") || "";
  const data = type.includes("json") ? await res.json() : await res.text();
  if (!res.ok) {
    if (res.status === 401) signOut("The key was refused (401). Enter a valid key.");
    throw new ApiError(res.status, data);
  }
  return data;
}

function errorBox(err) {
  const e = err.body?.error;
  return h("p", { class: "error", role: "alert" },
    e ? `${e.code}: ${e.message}` : String(err.message || err));
}

// --- page lifecycle: one page at a time, its timers and charts stop when it is left ---------

let page = { timers: [], charts: [] };

function every(ms, fn) {
  page.timers.push(setInterval(fn, ms));
}

function leavePage() {
  page.timers.forEach(clearInterval);
  page.charts.forEach((c) => c.destroy());
  page = { timers: [], charts: [] };
}

function chart(canvas, config) {
  config.options = Object.assign({ animation: false, responsive: true,
    maintainAspectRatio: false }, config.options || {});
  const c = new Chart(canvas, config);
  page.charts.push(c);
  return c;
}

function chartBox(label, wide) {
  const canvas = h("canvas", { role: "img", "aria-label": label });
  return [h("figure", { class: wide ? "chart wide" : "chart" }, canvas), canvas];
}

// --- sign-in --------------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(KEY);
  leavePage();
  document.getElementById("page").replaceChildren();
  document.getElementById("login").hidden = false;
  document.getElementById("forget-key").hidden = true;
  document.getElementById("login-error").textContent = message || "";
  document.getElementById("api-key").focus();
}

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("api-key");
  sessionStorage.setItem(KEY, input.value.trim());
  input.value = "";
  try {
    await api("/v1/models");
  } catch (err) {
    if (err.status !== 401) signOut(`The API answered: ${err.message}`);
    return;
  }
  document.getElementById("login").hidden = true;
  document.getElementById("forget-key").hidden = false;
  route();
}

// --- Datasets --------------------------------------------------------------------------------

async function filesOf(dataTransfer) {
  // Dropped folders are walked; each file keeps its path inside the dropped folder.
  const out = [];
  const walk = async (entry, prefix) => {
    if (entry.isFile) {
      const file = await new Promise((ok, bad) => entry.file(ok, bad));
      out.push([file, prefix + file.name]);
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      let batch;
      do {
        batch = await new Promise((ok, bad) => reader.readEntries(ok, bad));
        for (const child of batch) await walk(child, `${prefix}${entry.name}/`);
      } while (batch.length);
    }
  };
  const entries = [...dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry());
  if (entries.length && entries.every(Boolean)) {
    for (const entry of entries) await walk(entry, "");
    // A single dropped folder: its own name is not part of the dataset's paths.
    const top = entries.length === 1 && entries[0].isDirectory ? `${entries[0].name}/` : "";
    return out.map(([f, p]) => [f, top && p.startsWith(top) ? p.slice(top.length) : p]);
  }
  return [...dataTransfer.files].map((f) => [f, f.name]);
}

function uploadForm(onDone) {
  let chosen = [];
  const summary = h("p", { id: "upload-chosen", class: "muted", "aria-live": "polite" },
    "No files chosen.");
  const result = h("div", { id: "upload-result", "aria-live": "polite" });
  const choose = (pairs) => {
    chosen = pairs;
    summary.textContent = pairs.length
      ? `${pairs.length} file(s): ${pairs.map((p) => p[1]).join(", ")}` : "No files chosen.";
  };
  const input = h("input", { id: "upload-files", type: "file", multiple: true,
    onchange: () => choose([...input.files].map((f) => [f, f.webkitRelativePath || f.name])) });
  const drop = h("div", { class: "drop", id: "drop-zone" },
    "Drop a dataset file, the files or folder of a BEIR dataset, or an archive here.");
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", async (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(await filesOf(e.dataTransfer));
  });
  const form = h("form", { class: "card", id: "upload-form", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload a dataset"),
    drop,
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "upload-files" }, "Files or archive"), input),
      h("div", {}, h("label", { for: "upload-name" }, "Name"),
        h("input", { id: "upload-name", name: "name", pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}" })),
      h("div", {}, h("label", { for: "upload-format" }, "Format"),
        h("select", { id: "upload-format", name: "format" },
          ["", "beir", "rag-json", "flag-jsonl", "pairs", "scored-pairs"].map((f) =>
            h("option", { value: f }, f || "detect")))),
      h("div", {}, h("label", { for: "upload-split" }, "Split (one-split formats)"),
        h("input", { id: "upload-split", name: "split", value: "train" })),
      h("button", { type: "submit" }, "Upload")),
    summary, result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!chosen.length) { result.replaceChildren(h("p", { class: "error", role: "alert" },
      "Choose or drop files first.")); return; }
    const data = new FormData();
    for (const [file, path] of chosen) data.append("files", file, path);
    for (const name of ["name", "format", "split"]) {
      const v = form.elements[name].value.trim();
      if (v) data.append(name, v);
    }
    result.replaceChildren(h("p", { class: "muted" }, "Uploading and validating…"));
    try {
      const ds = await api("/v1/datasets", { method: "POST", form: data });
      result.replaceChildren(h("p", { class: "good", role: "status" },
        `Stored "${ds.name}" (${ds.id}): ${ds.stats.documents} documents, ` +
        `${ds.stats.queries} queries.`));
      onDone();
    } catch (err) {
      result.replaceChildren(uploadErrors(err));
    }
  });
  return form;
}

function uploadErrors(err) {
  const issues = err.body?.error?.issues;
  if (!issues || !issues.length) return errorBox(err);
  return h("div", { role: "alert", id: "upload-errors" },
    h("p", { class: "error" }, `The dataset was refused (${issues.length} problem(s)):`),
    table(["file", "line", "field", "code", "problem"], issues.map((i) =>
      [i.file ?? "", i.line ?? "", i.field ?? "", i.code, i.message])));
}

async function datasetsPage(root) {
  const list = h("div", { id: "dataset-list" });
  const refresh = async () => {
    const page = await api("/v1/datasets?limit=200");
    list.replaceChildren(page.items.length ? table(
      ["name", "format", "documents", "queries", "splits", "created", ""],
      page.items.map((d) => [
        h("a", { href: `#/datasets/${d.id}` }, d.name), d.format,
        num(d.stats.documents, 0), num(d.stats.queries, 0),
        Object.keys(d.stats.splits || {}).join(", "), when(d.created_at),
        h("button", { type: "button", "aria-label": `Delete dataset ${d.name}`,
          onclick: () => deleteDataset(d, refresh) }, "Delete"),
      ])) : h("p", { class: "muted" }, "No datasets yet."));
  };
  root.append(h("h1", {}, "Datasets"), uploadForm(refresh), h("h2", {}, "Stored"), list);
  await refresh();
}

async function deleteDataset(d, after) {
  if (!confirm(`Delete dataset "${d.name}" and its files?`)) return;
  try {
    await api(`/v1/datasets/${d.id}`, { method: "DELETE" });
    location.hash === "#/datasets" ? after() : (location.hash = "#/datasets");
  } catch (err) {
    alert(err.message);
  }
}

function histogramChart(root, title, hist) {
  if (!hist) return;
  const labels = hist.edges.map((lo, i) =>
    i + 1 < hist.edges.length ? `${lo}–${hist.edges[i + 1] - 1}` : `${lo}+`);
  const [box, canvas] = chartBox(`${title}: histogram of lengths in words`);
  root.append(box);
  chart(canvas, { type: "bar", data: { labels, datasets: [{ label: title,
    data: hist.counts, backgroundColor: "#2456c8" }] },
    options: { plugins: { title: { display: true, text: `${title} (words)` } } } });
}

async function datasetPage(root, id) {
  const d = await api(`/v1/datasets/${id}`);
  const s = d.stats;
  const lengths = (name, l) => [name, num(l.p50, 0), num(l.p90, 0), num(l.p99, 0), num(l.max, 0)];
  root.append(
    h("h1", {}, `Dataset ${d.name}`),
    h("p", { class: "muted" }, `${d.id} · ${d.format} · ${d.size_bytes} bytes · ${when(d.created_at)}`),
    table(["", "count"], [
      ["documents", num(s.documents, 0)], ["queries", num(s.queries, 0)],
      ["queries without judgments", num(s.unjudged_queries, 0)],
      ["documents relevant to no query", num(s.never_relevant_documents, 0)],
      ["hard negatives (query, document)", num(s.negatives, 0)],
      ["scored pairs", num(s.scored_pairs, 0)],
    ], "Counts"),
    table(["split", "judged queries", "judgments", "relevant per query"],
      Object.entries(s.splits || {}).map(([n, x]) => [n, num(x.judged_queries, 0),
        num(x.qrels_pairs, 0), num(x.mean_relevant, 2)]), "Splits"),
    table(["text", "p50", "p90", "p99", "max"], [
      lengths("document characters", s.doc_chars), lengths("document words", s.doc_tokens),
      lengths("query characters", s.query_chars), lengths("query words", s.query_tokens),
    ], "Lengths"));
  const charts = h("div", { class: "charts" });
  root.append(h("h2", {}, "Text lengths"), charts);
  histogramChart(charts, "documents", s.length_histograms?.documents);
  histogramChart(charts, "queries", s.length_histograms?.queries);
  if (s.warnings?.length) {
    root.append(h("h2", {}, "Warnings"), table(["code", "message"],
      s.warnings.map((w) => [w.code, w.message])));
  }
  const checks = Object.entries(s.checks || {}).filter(([, c]) => c && typeof c === "object");
  if (checks.length) {  // docs/quality-loop.md
    const ids = (i) => (i.doc_ids || [i.query_id, i.train_query_id, i.doc_id]).filter(Boolean);
    root.append(table(["check", "count", "first records"], checks.map(([name, c]) => [name,
      num(c.count, 0), (c.items || []).slice(0, 5).map((i) => ids(i).join(" ~ ")).join(", ")]),
      "Data checks"));
  }
  root.append(h("p", {}, h("button", { type: "button",
    onclick: () => deleteDataset(d) }, "Delete this dataset")));
}

// --- Jobs ------------------------------------------------------------------------------------

function progressCell(job) {
  const step = job.total_steps ? ` ${job.current_step}/${job.total_steps}` : "";
  return h("td", {},
    h("progress", { max: 100, value: job.progress, "aria-label": `progress of ${job.id}` }),
    ` ${job.progress.toFixed(0)}%`,
    h("div", { class: "muted" }, `${job.stage || ""}${step}`,
      job.status === "running" && job.eta_seconds != null ? ` · ETA ${secs(job.eta_seconds)}` : ""));
}

const statusCell = (job) => h("td", {},
  h("span", { class: `status status-${job.status}` }, job.status),
  job.error ? h("div", { class: "error" }, job.error.code) : null);

async function cancelJob(job, after) {
  try {
    await api(`/v1/jobs/${job.id}/cancel`, { method: "POST" });
  } catch (err) {
    alert(err.message);
  }
  after();
}

function cancelButton(job, after) {
  if (TERMINAL.includes(job.status)) return "";
  return h("button", { type: "button", "aria-label": `Cancel job ${job.id}`,
    onclick: () => cancelJob(job, after) }, "Cancel");
}

function specFor(type, f) {
  const base = { dataset_id: f.dataset.value };
  const model = f.model.value.trim();
  const spec = {
    eval: { ...base, model, split: f.split.value.trim() || "test" },
    finetune: { ...base, base_model: model },
    compare: { ...base, base_model: model },
    index: { ...base, model },
    mine: { ...base, model, split: f.split.value.trim() || "train" },
    nudge: { ...base, model },
  }[type];
  const extra = f.extra.value.trim();
  return extra ? Object.assign(spec, JSON.parse(extra)) : spec;
}

async function jobForm(onDone) {
  const datasets = (await api("/v1/datasets?limit=200")).items;
  const out = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "card", id: "job-form", "aria-labelledby": "job-form-title" },
    h("h2", { id: "job-form-title" }, "Run a job"),
    h("div", { class: "row" },
      h("div", {}, h("label", { for: "job-type" }, "Type"),
        h("select", { id: "job-type", name: "type" }, JOB_TYPES.map((t) => h("option", {}, t)))),
      h("div", {}, h("label", { for: "job-dataset" }, "Dataset"),
        h("select", { id: "job-dataset", name: "dataset", required: true },
          datasets.map((d) => h("option", { value: d.id }, `${d.name} (${d.id})`)))),
      h("div", {}, h("label", { for: "job-model" }, "Model"),
        h("input", { id: "job-model", name: "model", value: BASE_MODEL, size: 40 })),
      h("div", {}, h("label", { for: "job-split" }, "Split"),
        h("input", { id: "job-split", name: "split", value: "test", size: 8 }))),
    h("label", { for: "job-extra" }, "More spec fields (JSON object, optional)"),
    h("textarea", { id: "job-extra", name: "extra", placeholder: '{"params": {"epochs": 1}}' }),
    h("button", { type: "submit" }, "Submit"), out);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const type = form.elements.type.value;
    try {
      const job = await api("/v1/jobs", { method: "POST",
        json: { type, spec: specFor(type, form.elements) } });
      out.replaceChildren(h("p", { class: "good", role: "status" }, "Queued ",
        h("a", { href: `#/jobs/${job.id}` }, job.id)));
      onDone();
    } catch (err) {
      out.replaceChildren(err instanceof SyntaxError
        ? h("p", { class: "error", role: "alert" }, `spec JSON: ${err.message}`) : errorBox(err));
    }
  });
  return form;
}

async function jobsPage(root) {
  const filter = (id, label, values) => h("div", {},
    h("label", { for: id }, label),
    h("select", { id, onchange: () => refresh() },
      h("option", { value: "" }, "all"), values.map((v) => h("option", {}, v))));
  const list = h("div", { id: "job-list" });
  const refresh = async () => {
    const q = new URLSearchParams({ limit: "100" });
    for (const [id, key] of [["filter-type", "type"], ["filter-status", "status"]]) {
      const v = document.getElementById(id)?.value;
      if (v) q.set(key, v);
    }
    const jobs = (await api(`/v1/jobs?${q}`)).items;
    list.replaceChildren(jobs.length ? table(
      ["job", "type", "status", "progress", "created", ""],
      jobs.map((j) => [h("a", { href: `#/jobs/${j.id}` }, j.id), j.type, statusCell(j),
        progressCell(j), when(j.created_at), cancelButton(j, refresh)]))
      : h("p", { class: "muted" }, "No jobs."));
  };
  root.append(h("h1", {}, "Jobs"), await jobForm(() => refresh()),
    h("h2", {}, "Jobs"),
    h("div", { class: "row card", role: "group", "aria-label": "Filters" },
      filter("filter-type", "Type", JOB_TYPES), filter("filter-status", "Status", STATES)),
    list);
  await refresh();
  every(POLL_MS, refresh);
}

function metricsTable(before, after, caption) {
  const names = Object.keys(after || before || {});
  if (!names.length) return null;
  if (!before) return table(["metric", "value"], names.map((n) => [n, num(after[n])]), caption);
  return table(["metric", "before", "after", "change (points)"], names.map((n) => [n,
    num(before[n]), num(after[n]), h("td", { class: "num" },
      pts(100 * ((after[n] ?? 0) - (before[n] ?? 0))))]), caption);
}

function resultSection(job) {
  const r = job.result || {};
  const parts = [];
  if (job.type === "eval" && r.metrics) {
    parts.push(h("div", { id: "eval-metrics" }, metricsTable(null, r.metrics,
      `${r.num_queries} queries, ${r.num_documents} documents`)));
  }
  if (job.type === "finetune" && r.metrics) {
    parts.push(metricsTable(r.metrics.before, r.metrics.after, "Validation, best checkpoint"),
      h("p", {}, "Model ", h("a", { href: `#/models/${r.model_id}` }, r.model_id),
        ` · ${fmt(r.train_seconds, 0)} s of training, ${fmt(r.samples_per_second, 2)} samples/s`));
  }
  if (job.type === "nudge" && r.val) {
    parts.push(h("p", { id: "nudge-step" }, `Chosen NUDGE step: ${fmt(r.step)} `,
      `(${r.docs_moved} of ${r.num_documents} documents moved, chosen on ${r.metric}); index `,
      h("a", { href: "#/try" }, r.index_id)),
      metricsTable(r.val.before, r.val.after, "Validation"),
      metricsTable(r.test?.before, r.test?.after, "Test"));
  }
  if (job.type === "index" && r.index_id) {
    parts.push(h("p", {}, `Index ${r.index_id} · `, h("a", { href: "#/try" }, "try it")));
  }
  if (job.type === "compare" && job.status === "succeeded") {
    parts.push(h("p", {}, h("a", { href: `#/compare/${job.id}` }, "Open the comparison")));
  }
  if (job.type === "mine" && r.dataset_id) {
    parts.push(h("p", {}, "Mined dataset ", h("a", { href: `#/datasets/${r.dataset_id}` },
      r.dataset_id)));
  }
  return parts.length ? [h("h2", {}, "Result"), ...parts] : [];
}

function trainingCharts(root, series) {
  const loss = series.loss || [];
  const lr = series.learning_rate || [];
  const evals = Object.entries(series).filter(([k]) => /^(eval|val)_/.test(k));
  if (loss.length) {
    const [box, canvas] = chartBox("training loss and learning rate by step", true);
    box.id = "loss-chart";
    root.append(box);
    chart(canvas, { type: "line", data: { datasets: [
      { label: "loss", data: loss.map((p) => ({ x: p.step, y: p.value })), yAxisID: "y",
        borderColor: "#2456c8" },
      { label: "learning rate", data: lr.map((p) => ({ x: p.step, y: p.value })),
        yAxisID: "lr", borderColor: "#c86a24" }] },
      options: { parsing: false, scales: { x: { type: "linear", title: { display: true,
        text: "step" } }, y: { position: "left" }, lr: { position: "right" } } } });
  }
  const per = evals.filter(([, v]) => v.length > 0);
  if (per.length && per.some(([, v]) => v.length > 1 || v[0].step > 0)) {
    const steps = [...new Set(per.flatMap(([, v]) => v.map((p) => p.step)))].sort((a, b) => a - b);
    const shown = per.filter(([k]) => /@10$/.test(k));
    root.append(table(["step", ...shown.map(([k]) => k)], steps.map((s) => [num(s, 0),
      ...shown.map(([, v]) => num(v.find((p) => p.step === s)?.value))]),
      "Evaluation metrics by step"));
  }
}

async function jobPage(root, id) {
  const head = h("div", { id: "job-head" });
  const body = h("div", {});
  const eventsBox = h("div", { class: "events", id: "job-events", tabindex: "0",
    role: "log", "aria-label": "Job events" });
  root.append(h("h1", {}, `Job ${id}`), head, body, h("h2", {}, "Events"), eventsBox);
  let lastEvent = 0;
  let finished = false;
  let drawnSteps = -1;
  const events = async () => {
    const rows = await api(`/v1/jobs/${id}/events?after=${lastEvent}&limit=500`);
    for (const e of rows) {
      lastEvent = Math.max(lastEvent, e.id);
      const data = Object.keys(e.data || {}).length ? ` ${JSON.stringify(e.data)}` : "";
      eventsBox.append(h("div", {}, `${when(e.at)} [${e.kind}] ${e.message}${data}`));
    }
  };
  const details = async (job) => {
    const [metrics, artifacts, children] = await Promise.all([
      api(`/v1/jobs/${id}/metrics`), api(`/v1/jobs/${id}/artifacts`),
      job.type === "compare" ? api(`/v1/jobs/${id}/children`) : Promise.resolve([])]);
    page.charts.forEach((c) => c.destroy());
    page.charts = [];
    const charts = h("div", { class: "charts" });
    const parts = [...resultSection(job)];
    if (Object.keys(metrics.series).length) {
      parts.push(h("h2", {}, "Training and evaluation"), charts);
    }
    if (children.length) {
      parts.push(h("h2", {}, "Methods"), table(["job", "type", "method", "status", "progress"],
        children.map((c) => [h("a", { href: `#/jobs/${c.id}` }, c.id), c.type,
          c.spec.method || "", statusCell(c), progressCell(c)])));
    }
    parts.push(h("h2", {}, "Artifacts"), artifacts.length ? table(["file", "bytes"],
      artifacts.map((a) => [a.path, num(a.bytes, 0)])) : h("p", { class: "muted" }, "None yet."));
    body.replaceChildren(...parts);
    trainingCharts(charts, metrics.series);
  };
  const refresh = async () => {
    if (finished) return;
    const job = await api(`/v1/jobs/${id}`);
    finished = TERMINAL.includes(job.status);
    head.replaceChildren(table(["status", "progress", "type", "attempts", "worker", "created",
      "started", "finished", ""], [[statusCell(job), progressCell(job), job.type, job.attempts,
      job.worker || "—", when(job.created_at), when(job.started_at), when(job.finished_at),
      cancelButton(job, refresh)]]),
      job.error ? h("p", { class: "error", id: "job-error", role: "alert" },
        `${job.error.code}: ${job.error.message || ""}`) : "");
    // The details are redrawn when the step moves and once more when the job has ended.
    if (finished || job.current_step !== drawnSteps) {
      drawnSteps = job.current_step;
      await details(job);
    }
    await events();
  };
  await refresh();
  every(POLL_MS, refresh);
}

// --- Models ----------------------------------------------------------------------------------

async function modelsPage(root) {
  const list = h("div", { id: "model-list" });
  const refresh = async () => {
    const models = (await api("/v1/models")).data;
    const headline = (m, side) => m.metrics?.[side]?.["ndcg@10"];
    list.replaceChildren(table(
      ["model", "kind", "method", "base model", "nDCG@10 before", "nDCG@10 after", ""],
      models.map((m) => [h("a", { href: `#/models/${encodeURIComponent(m.id)}` }, m.id), m.kind,
        m.method || "", m.base_model || "", num(headline(m, "before")), num(headline(m, "after")),
        m.kind === "finetuned" ? h("button", { type: "button", "aria-label": `Delete model ${m.id}`,
          onclick: () => deleteModel(m, refresh) }, "Delete") : ""])));
  };
  root.append(h("h1", {}, "Models"), list);
  await refresh();
}

async function deleteModel(m, after) {
  if (!confirm(`Delete model ${m.id} and its files?`)) return;
  try {
    await api(`/v1/models/${m.id}`, { method: "DELETE" });
    after ? after() : (location.hash = "#/models");
  } catch (err) {
    alert(err.message);
  }
}

async function modelPage(root, id) {
  const m = await api(`/v1/models/${id}`);
  root.append(h("h1", {}, `Model ${m.id}`),
    h("p", { class: "muted" }, [m.kind, m.method, m.base_model && `base ${m.base_model}`,
      m.dataset_id && `dataset ${m.dataset_id}`].filter(Boolean).join(" · ")));
  if (m.kind === "base") {
    root.append(h("p", {}, "A packaged base model: it has no training metrics or card."));
    return;
  }
  root.append(metricsTable(m.metrics.before, m.metrics.after, "Validation, before and after"),
    h("p", {}, "Made by job ", h("a", { href: `#/jobs/${m.job_id}` }, m.job_id)));
  const card = await api(`/v1/models/${m.id}/card`).catch((err) => err);
  const box = h("div", { class: "card card-html", id: "model-card" });
  // The server renders the card with raw HTML escaped (markdown-it, html off).
  if (card instanceof Error) box.append(errorBox(card));
  else box.innerHTML = card.html;
  root.append(h("h2", {}, "Model card"), box,
    h("p", {}, h("button", { type: "button", onclick: () => deleteModel(m) }, "Delete this model")));
}

// --- Compare ---------------------------------------------------------------------------------

async function compareList(root) {
  const jobs = (await api("/v1/jobs?type=compare&limit=100")).items;
  root.append(h("h1", {}, "Compare"), jobs.length ? table(["job", "status", "progress",
    "created"], jobs.map((j) => [h("a", { href: j.status === "succeeded" ? `#/compare/${j.id}`
    : `#/jobs/${j.id}` }, j.id), statusCell(j), progressCell(j), when(j.created_at)]))
    : h("p", { class: "muted" }, "No compare jobs yet: submit one on the Jobs page."));
}

function docsList(docs) {
  return h("ol", { class: "docs" }, (docs || []).map((d) =>
    h("li", {}, d.relevant ? "✓ " : "", h("code", {}, d.id), d.title ? ` ${d.title}` : "")));
}

function queryChanges(title, changes) {
  return [h("h3", {}, title), changes.length ? table(
    ["query", "nDCG@10 before", "after", "first relevant rank", "top documents before",
      "top documents after"],
    changes.map((c) => [c.text || c.query_id, num(c.before), num(c.after),
      `${c.rank_before ?? "—"} → ${c.rank_after ?? "—"}`, docsList(c.top_before),
      docsList(c.top_after)])) : h("p", { class: "muted" }, "None.")];
}

async function comparePage(root, id) {
  const r = await api(`/v1/jobs/${id}/report`);
  const metric = (row, m) => num(row.test?.[m]);
  root.append(h("h1", {}, `Comparison on ${r.dataset}`),
    h("p", { class: "muted" }, `base model ${r.base_model} · ${r.num_queries} test queries ` +
      `(${r.test_split})` + (r.best ? ` · best: ${r.best} by ${fmt(r.best_margin, 1)} points` : "")),
    h("div", { id: "compare-table" }, table(["method", "status", ...r.metrics,
      "change nDCG@10", r.forgetting_dataset ? `forgetting (${r.forgetting_dataset}) nDCG@10` :
      "forgetting", "wins / losses / ties", "time", "re-encode corpus"],
    r.rows.map((row) => [row.method, row.status, ...r.metrics.map((m) => metric(row, m)),
      h("td", { class: "num" }, pts(row.change?.["ndcg@10"])),
      h("td", { class: "num" }, row.forgetting ? `${fmt(row.forgetting["ndcg@10"])} ` +
        `(${pts(row.forgetting_change?.["ndcg@10"])})` : "—"),
      `${row.wins} / ${row.losses} / ${row.ties}`, secs(row.wall_seconds),
      row.reencode ? "yes" : "no"]), "Test metrics per method (change in points)")));
  const charts = h("div", { class: "charts", id: "compare-charts" });
  root.append(h("h2", {}, "Per metric"), charts);
  const scored = r.rows.filter((row) => row.test && Object.keys(row.test).length);
  for (const m of r.metrics) {
    const [box, canvas] = chartBox(`${m} by method`);
    charts.append(box);
    chart(canvas, { type: "bar", data: { labels: scored.map((row) => row.method),
      datasets: [{ label: m, data: scored.map((row) => row.test[m]),
        backgroundColor: "#2456c8" }] },
    options: { plugins: { title: { display: true, text: m }, legend: { display: false } },
      scales: { y: { beginAtZero: true } } } });
  }
  const changes = h("div", { id: "query-changes" });
  for (const row of r.rows.filter((x) => x.method !== "base" && x.test)) {
    changes.append(h("h2", {}, `${row.method}: queries that changed`),
      ...queryChanges(`Wins (${row.wins})`, row.top_gains),
      ...queryChanges(`Losses (${row.losses})`, row.top_losses));
  }
  root.append(changes);
}

// --- Try it ----------------------------------------------------------------------------------

async function tryPage(root) {
  const indexes = (await api("/v1/indexes")).items;
  root.append(h("h1", {}, "Try it"));
  if (!indexes.length) {
    root.append(h("p", { class: "muted" }, "No indexes yet: run an index (or nudge) job."));
    return;
  }
  const label = (i) => `${i.id} · ${i.model} · ${i.method} · ${i.size} documents`;
  const pick = (id, text, chosen) => h("div", {}, h("label", { for: id }, text),
    h("select", { id }, indexes.map((i) => h("option", { value: i.id,
      selected: i.id === chosen }, label(i)))));
  const tuned = indexes.find((i) => i.method !== "base" || i.model.startsWith("mdl_"));
  const base = indexes.find((i) => i !== tuned) || indexes[0];
  const out = h("div", { class: "side", id: "try-results", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "try-form" },
    h("div", { class: "row" }, pick("try-left", "Left index", base.id),
      pick("try-right", "Right index", (tuned || base).id),
      h("div", {}, h("label", { for: "try-k" }, "Documents"),
        h("input", { id: "try-k", type: "number", min: 1, max: 50, value: 5 }))),
    h("label", { for: "try-query" }, "Query"),
    h("input", { id: "try-query", required: true, size: 80 }),
    h("button", { type: "submit" }, "Search both"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const query = document.getElementById("try-query").value;
    const topK = Number(document.getElementById("try-k").value) || 5;
    const side = async (selectId) => {
      const indexId = document.getElementById(selectId).value;
      try {
        const res = await api(`/v1/indexes/${indexId}/search`, { method: "POST",
          json: { query, top_k: topK } });
        return h("div", {}, h("h2", {}, label(indexes.find((i) => i.id === indexId))),
          table(["#", "score", "document"], res.results[0].documents.map((d, n) => [num(n + 1, 0),
            num(d.score, 3), [h("strong", {}, d.title || d.id), " ", d.text.slice(0, 240)]])));
      } catch (err) {
        return errorBox(err);
      }
    };
    out.replaceChildren(...await Promise.all([side("try-left"), side("try-right")]));
  });
  root.append(form, out);
}

// --- routing ---------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/datasets\/([\w-]+)$/, datasetPage],
  [/^#\/datasets$/, datasetsPage],
  [/^#\/jobs\/([\w-]+)$/, jobPage],
  [/^#\/jobs$/, jobsPage],
  [/^#\/models\/(.+)$/, modelPage],
  [/^#\/models$/, modelsPage],
  [/^#\/compare\/([\w-]+)$/, comparePage],
  [/^#\/compare$/, compareList],
  [/^#\/try$/, tryPage],
];

let routeSeq = 0;  // a page that finishes after the next one started must not relabel it

async function route() {
  const seq = ++routeSeq;
  leavePage();
  if (!sessionStorage.getItem(KEY)) { signOut(); return; }
  const hash = location.hash || "#/jobs";
  const [pattern, render] = ROUTES.find(([p]) => p.test(hash)) || ROUTES[3];
  const top = `#/${hash.split("/")[1]}`;
  for (const a of document.querySelectorAll("nav a")) {
    a.toggleAttribute("aria-current", a.getAttribute("href") === top);
    if (a.getAttribute("href") === top) a.setAttribute("aria-current", "page");
  }
  const root = h("div", {});
  document.getElementById("page").replaceChildren(root);
  const args = (hash.match(pattern) || []).slice(1).map(decodeURIComponent);
  try {
    await render(root, ...args);
  } catch (err) {
    root.append(errorBox(err));
  }
  if (seq === routeSeq) document.body.dataset.page = top.slice(2);
}

document.getElementById("login-form").addEventListener("submit", signIn);
document.getElementById("forget-key").addEventListener("click", () => signOut("Key forgotten."));
window.addEventListener("hashchange", route);
if (sessionStorage.getItem(KEY)) {
  document.getElementById("forget-key").hidden = false;
  route();
} else {
  signOut();
}

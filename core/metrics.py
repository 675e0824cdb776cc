"""Process metrics in Prometheus' format: what serving and jobs did in this process.

The API exposes them at ``GET /metrics`` (with the job table's counts, ``core.jobs.metrics``);
a worker at its own port (``workers/metrics.py``). Every metric is created once, at import,
on prometheus-client's default registry; a worker's pool processes share them through its
multiprocess directory.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

disable_created_metrics()  # no *_created series: they double the output and say little

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
JOB_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

HTTP_REQUESTS = Counter(
    "embedtune_http_requests",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
HTTP_SECONDS = Histogram(
    "embedtune_http_request_seconds",
    "HTTP request latency by route template.",
    ["route"],
    buckets=LATENCY_BUCKETS,
)
SEARCH_QUERIES = Counter("embedtune_search_queries", "Queries searched in served indexes.")
TEXTS_EMBEDDED = Counter(
    "embedtune_texts_embedded", "Texts encoded by the serving engine, by side.", ["side"]
)
TOKENS_EMBEDDED = Counter("embedtune_tokens_embedded", "Tokens encoded by the serving engine.")
BATCH_SIZE = Histogram(
    "embedtune_batch_size", "Texts per forward pass of the serving engine.", buckets=BATCH_BUCKETS
)
FORWARD_SECONDS = Histogram(
    "embedtune_forward_seconds", "Duration of one serving forward pass.", buckets=LATENCY_BUCKETS
)
MODEL_LOADS = Counter("embedtune_model_loads", "Model weights loaded (serving or jobs).")
MODEL_EVICTIONS = Counter(
    "embedtune_model_evictions", "Served models unloaded (memory budget or deleted)."
)
MODELS_LOADED = Gauge(
    "embedtune_models_loaded", "Models the serving engine holds now.", multiprocess_mode="livesum"
)
JOB_SECONDS = Histogram(
    "embedtune_job_duration_seconds",
    "Wall time of job runs on this worker, by type and outcome.",
    ["type", "outcome"],
    buckets=JOB_BUCKETS,
)
JOB_TEXTS_ENCODED = Counter(
    "embedtune_job_texts_encoded", "Texts encoded by jobs (evaluation, mining, indexing)."
)

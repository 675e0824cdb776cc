"""Run a worker: ``python -m workers worker -Q cpu,gpu --concurrency 1`` (Celery's own CLI).
With ``EMBEDTUNE_WORKER_METRICS_PORT`` set it also serves its Prometheus metrics there."""

import sys

from core.settings import get_settings
from workers import metrics

serves_metrics = metrics.prepare(get_settings())  # before prometheus-client is imported

from workers.app import create_celery  # noqa: E402

if serves_metrics:
    metrics.serve(get_settings())
create_celery().worker_main(sys.argv[1:])

"""A worker's own Prometheus metrics (``core.metrics``: job durations, model loads, texts
encoded), served on ``EMBEDTUNE_WORKER_METRICS_PORT`` by the worker's main process.

Celery runs jobs in forked pool processes, so the metrics go through prometheus-client's
multiprocess mode: every process writes its values under one directory, which must be named
(``PROMETHEUS_MULTIPROC_DIR``) before prometheus-client is first imported.
"""

from __future__ import annotations

import os
import shutil

from core.settings import Settings


def prepare(settings: Settings) -> bool:
    """Point prometheus-client at a fresh directory for this worker; False when the worker
    serves no metrics. Call before anything imports ``core.metrics``."""
    if settings.worker_metrics_port is None:
        return False
    folder = settings.data_dir / "metrics" / f"worker-{os.getpid()}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)
    return True


def serve(settings: Settings) -> None:
    """Serve the worker's metrics, summed over its processes, on ``settings.host``."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry)
    start_http_server(settings.worker_metrics_port or 0, addr=settings.host, registry=registry)

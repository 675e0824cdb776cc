"""Service commands: migrate the database, run the API, a worker, or both (`up`)."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Annotated

import typer

from cli.app import app, console

QueuesOpt = Annotated[str, typer.Option(help="Queues to consume: cpu, gpu or both.")]


@app.command()
def migrate() -> None:
    """Apply the database migrations (alembic upgrade head)."""
    from core.settings import get_settings
    from core.store.db import upgrade

    upgrade(get_settings().db_url)
    console.print("database is at the latest migration")


@app.command()
def api(host: str | None = None, port: int | None = None) -> None:
    """Serve the HTTP API (binds 127.0.0.1:8000 unless configured)."""
    import uvicorn

    from core.settings import get_settings

    settings = get_settings()
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level="info",
    )


@app.command()
def worker(queues: QueuesOpt = "cpu,gpu", concurrency: int = 1) -> None:
    """Run a Celery worker for the job queues."""
    os.execvp(sys.executable, _worker_argv(queues, concurrency))


@app.command()
def reconciler() -> None:
    """Re-enqueue lost jobs and take back stale ones: one per deployment (a second one waits
    as a standby), every EMBEDTUNE_RECONCILE_SECONDS."""
    import signal
    import threading

    from core.bootstrap import bootstrap
    from workers.reconciler import run_forever

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_forever(bootstrap(), stop)


def _worker_argv(queues: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "workers",
        "worker",
        "-Q",
        queues,
        "--concurrency",
        str(concurrency),
        "--loglevel",
        "INFO",
        "-n",
        "embedtune@%h",
    ]


@app.command()
def up(host: str | None = None, port: int | None = None, queues: QueuesOpt = "cpu,gpu") -> None:
    """Migrate, then run the API, one worker and the reconciler together (single machine,
    no services)."""
    migrate()
    processes = [
        subprocess.Popen(_worker_argv(queues, 1)),
        subprocess.Popen([sys.executable, "-m", "cli", "reconciler"]),
    ]
    try:
        api(host, port)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)

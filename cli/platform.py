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


def _worker_argv(queues: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "workers.tasks:celery",
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
    """Migrate, then run the API and one worker together (single machine, no services)."""
    migrate()
    process = subprocess.Popen(_worker_argv(queues, 1))
    try:
        api(host, port)
    finally:
        process.terminate()
        process.wait(timeout=60)

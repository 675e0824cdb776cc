"""Service commands: migrate the database, run the API, a worker, or both (`up`)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from cli.app import app, console

QueuesOpt = Annotated[str, typer.Option(help="Queues to consume: cpu, gpu or both.")]
PR_SET_PDEATHSIG = 1  # linux/prctl.h


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
    processes = [  # both get SIGTERM when this process dies, even by SIGKILL
        subprocess.Popen(_worker_argv(queues, 1), preexec_fn=die_with_parent(os.getpid())),
        subprocess.Popen(
            [sys.executable, "-m", "cli", "reconciler"], preexec_fn=die_with_parent(os.getpid())
        ),
    ]
    try:
        api(host, port)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=60)


def die_with_parent(parent: int) -> Callable[[], None]:
    """A ``preexec_fn`` after which the child gets SIGTERM when ``parent`` dies, even by SIGKILL
    (Linux ``PR_SET_PDEATHSIG``; elsewhere only a normal stop of ``up`` stops the worker)."""

    def arm() -> None:
        if sys.platform.startswith("linux"):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm

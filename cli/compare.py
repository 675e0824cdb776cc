"""The compare command: run a compare job in this process, on the local store, and print it."""

from __future__ import annotations

import json
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import DatasetArg, FormatOpt, app, err

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
WATCH_EVERY_S = 2.0


@app.command()
def compare(
    dataset: DatasetArg,
    model: Annotated[str, typer.Option("--model", "-m", help="Base model.")] = DEFAULT_MODEL,
    forgetting: Annotated[
        Path | None, typer.Option(help="A dataset not trained on, to measure forgetting.")
    ] = None,
    methods: Annotated[
        str | None, typer.Option(help="Comma-separated; default: every method but nudge-m.")
    ] = None,
    params: Annotated[
        str | None, typer.Option(help="FinetuneSpec fields as JSON, e.g. '{\"epochs\": 1}'.")
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Folder for report.json and report.md.")
    ] = None,
    fmt: FormatOpt = None,
    train_split: str = "train",
    test_split: str = "test",
    forgetting_split: str = "test",
    val_fraction: Annotated[float, typer.Option(help="Train queries held out.")] = 0.2,
) -> None:
    """Compare base, fine-tunes and NUDGE on one dataset and split, as the API's compare job
    does (one child job per method, in the local store), and print the report."""
    from core.bootstrap import bootstrap
    from core.compare import CompareReport, to_markdown
    from core.jobs.kinds.compare import CompareJob
    from core.jobs.runner import run_job
    from core.jobs.service import job_tree, submit_job
    from core.store.db import upgrade

    platform = bootstrap()
    settings, factory = platform.settings, platform.factory
    upgrade(settings.db_url)
    spec: dict[str, Any] = {
        "dataset_id": _register(factory, settings, dataset, fmt, train_split),
        # jobs take local models by absolute path only (see core.jobs.common.trusted_path)
        "base_model": str(Path(model).resolve()) if Path(model).is_dir() else model,
        "train_split": train_split,
        "test_split": test_split,
        "forgetting_split": forgetting_split,
        "val_fraction": val_fraction,
        "params": json.loads(params) if params else {},
    }
    if forgetting is not None:
        spec["forgetting_dataset_id"] = _register(factory, settings, forgetting, None, "test")
    if methods:
        spec["methods"] = [m.strip() for m in methods.split(",") if m.strip()]
    queue: list[str] = []  # run here, in the order jobs are enqueued, not by a worker
    job = submit_job(
        factory,
        CompareJob(type="compare", spec=spec),
        enqueue=lambda job_id, _: queue.append(job_id),
        models_dir=settings.models_dir,
        allow_paths=True,
    )
    err.print(f"compare job {job.id} (data in {settings.data_dir})")
    worker = f"cli@{socket.gethostname()}"
    with _watch(factory, job.id):
        while queue:  # each job's end enqueues what waited for it, the compare job last
            run_job(
                queue.pop(0),
                factory=factory,
                settings=settings,
                worker=worker,
                enqueue=lambda job_id, _: queue.append(job_id),
            )
    done = job_tree(factory, job_id=job.id)[0]
    if done.status != "succeeded":
        err.print(f"[bold red]compare job {done.status}[/] {done.error_message or ''}")
        raise typer.Exit(1)
    report = CompareReport.from_dict(done.result["report"])
    markdown = to_markdown(report)
    if output is not None:
        output.mkdir(parents=True, exist_ok=True)
        (output / "report.json").write_text(json.dumps(report.to_dict(), indent=1), "utf-8")
        (output / "report.md").write_text(markdown, "utf-8")
    typer.echo(markdown, nl=False)  # raw: a console would wrap the wide table


def _register(factory: Any, settings: Any, path: Path, fmt: str | None, split: str) -> str:
    """Copy a dataset into the local store (validated as an upload is) and return its id."""
    from core.services.datasets import register_dataset, staging_dir
    from core.store.db import transaction

    staging = staging_dir(settings)
    if path.is_dir():
        shutil.copytree(path, staging / path.name)
    else:
        shutil.copy2(path, staging / path.name)
    with transaction(factory) as session:
        return register_dataset(
            session, settings=settings, staging=staging, fmt=fmt, split=split
        ).id


@contextmanager
def _watch(factory: Any, job_id: str) -> Iterator[None]:
    """Print each change of state or stage of the job and its children while it runs."""
    from core.jobs.service import job_tree

    stop = threading.Event()
    seen: dict[str, tuple[str, str | None]] = {}

    def show() -> None:
        for row in job_tree(factory, job_id=job_id):
            if seen.get(row.id) != (row.status, row.stage):
                seen[row.id] = (row.status, row.stage)
                err.print(f"{row.type:<9}{row.id}  {row.status:<10}{row.stage or ''}")

    def loop() -> None:
        while not stop.wait(WATCH_EVERY_S):
            show()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        show()  # the final states

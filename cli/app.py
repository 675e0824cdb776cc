"""The Typer app and the console helpers every command module shares."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from core.datasets.options import ReadOptions, parse_columns
from core.errors import CoreError, DatasetInvalid

app = typer.Typer(
    help="EmbedTune: make a retrieval embedding model better on your data, and prove it.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err = Console(stderr=True)

DatasetArg = Annotated[Path, typer.Option("--dataset", "-d", help="Dataset file or BEIR folder.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="Force the format (default: detect).")
]

ColumnsOpt = Annotated[
    str | None,
    typer.Option(
        "--columns",
        help="Map fields to your file's columns, e.g. query=question,positive=answer "
        "(fields: query, positive, negative, label, score, …).",
    ),
]
DropEmptyOpt = Annotated[
    bool,
    typer.Option(
        "--drop-empty", help="Drop empty texts and the judgments pointing at them (counted)."
    ),
]
TsvQuotesOpt = Annotated[
    bool, typer.Option("--tsv-quotes", help='Treat " in TSV files as CSV quoting (default: text).')
]


def read_options(columns: str | None, drop_empty: bool, tsv_quotes: bool) -> ReadOptions:
    return ReadOptions(parse_columns(columns), drop_empty=drop_empty, tsv_quotes=tsv_quotes)


def print_warnings(ds: Any) -> None:
    """The dataset's read warnings (unused columns, dropped rows…) on stderr."""
    for warning in ds.warnings:
        err.print("[yellow]warning[/] " + escape(f"[{warning.code}] {warning}"), highlight=False)


def server_sessions() -> Any:  # -> sessionmaker[Session]
    """Sessions on the server's database (``EMBEDTUNE_DATABASE_URL``), for operator commands."""
    from core.settings import get_settings
    from core.store.db import make_engine, make_session_factory

    return make_session_factory(make_engine(get_settings().db_url))


def print_error(exc: CoreError) -> None:
    err.print(f"[bold red]error[/] {escape(f'[{exc.code}] {exc.message}')}", highlight=False)
    if isinstance(exc, DatasetInvalid):
        for issue in exc.issues[1:]:
            err.print(escape(f"  - [{issue.code}] {issue}"), highlight=False)


@contextmanager
def stage_progress() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress display fed by ``progress(stage, done, total)`` callbacks."""
    columns = (
        TextColumn("{task.description:<15}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bars:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bars.add_task(stage.replace("_", " "), total=total)
            bars.update(tasks[stage], completed=done, total=total)

        yield update


def flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value

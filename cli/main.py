"""``embedtune``: validate and convert datasets, inspect models, evaluate retrieval."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from core.errors import CoreError, DatasetInvalid

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
console = Console()
err = Console(stderr=True)

DatasetArg = Annotated[Path, typer.Option("--dataset", "-d", help="Dataset file or BEIR folder.")]
FormatOpt = Annotated[
    str | None, typer.Option("--format", "-f", help="Force the format (default: detect).")
]


def main() -> None:
    """Entry point: run the app, turning domain errors into a message and exit code 2."""
    try:
        app(standalone_mode=False)
    except CoreError as exc:
        _print_error(exc)
        sys.exit(2)
    except (typer.Exit, typer.Abort) as exc:
        sys.exit(getattr(exc, "exit_code", 1))
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise


def _print_error(exc: CoreError) -> None:
    err.print(f"[bold red]error[/] [{exc.code}] {exc.message}", highlight=False)
    if isinstance(exc, DatasetInvalid):
        for issue in exc.issues[1:]:
            err.print(f"  - [{issue.code}] {issue}", highlight=False)


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


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Dataset file or folder.")],
    fmt: FormatOpt = None,
    split: str = "train",
) -> None:
    """Validate a dataset and print its statistics."""
    from core.datasets.io import load_dataset
    from core.datasets.stats import dataset_stats

    ds = load_dataset(path, fmt, split=split)
    stats = dataset_stats(ds).as_dict()
    table = Table(title=f"{ds.name} ({ds.source_format}) is valid", show_header=False)
    for key, value in _flatten(stats):
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def convert(
    src: Path,
    dst: Path,
    to: Annotated[str, typer.Option("--to", help="Output format.")],
    fmt: FormatOpt = None,
    split: str = "train",
) -> None:
    """Convert a dataset between formats (BEIR, RAG JSON, FlagEmbedding, pairs, scored pairs)."""
    from core.datasets.io import load_dataset, save_dataset

    ds = load_dataset(src, fmt, split=split)
    out = save_dataset(ds, dst, to, split=split)
    console.print(f"wrote {to} dataset to {out}")


@app.command("split")
def split_cmd(
    path: Path,
    out: Path,
    val_fraction: Annotated[float, typer.Option(help="Share of queries held out.")] = 0.2,
    seed: int = 0,
    source: str = "train",
    fmt: FormatOpt = None,
) -> None:
    """Split a split's queries into train/val (deterministic by seed); writes a BEIR folder."""
    from core.datasets.io import load_dataset, save_dataset
    from core.datasets.split import split_by_query

    ds = split_by_query(
        load_dataset(path, fmt, split=source), source=source, val_fraction=val_fraction, seed=seed
    )
    save_dataset(ds, out, "beir")
    counts = ", ".join(f"{s}: {len(q)} queries" for s, q in sorted(ds.qrels.items()))
    console.print(f"wrote {out} ({counts})")


@app.command()
def model(ref: Annotated[str, typer.Argument(help="Directory, model id or hub id.")]) -> None:
    """Show how a model reference resolves: source, files, retrieval settings, fingerprint."""
    from core.models.loading import fingerprint
    from core.models.resolve import resolve_model
    from core.settings import get_settings

    resolved = resolve_model(ref, models_dir=get_settings().models_dir)
    table = Table(show_header=False)
    for key, value in (
        ("reference", ref),
        ("source", resolved.source),
        ("path", resolved.path),
        ("fingerprint", fingerprint(resolved.path)),
        *vars(resolved.config).items(),
    ):
        table.add_row(
            key,
            repr(value) if isinstance(value, str) and key.endswith("instruction") else str(value),
        )
    console.print(table)


@app.command("eval")
def eval_cmd(
    dataset: DatasetArg,
    model: Annotated[str, typer.Option("--model", "-m", help="Model reference.")],
    split: Annotated[str, typer.Option(help="Split whose judgments are scored.")] = "test",
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report JSON path.")] = None,
    fmt: FormatOpt = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    query_instruction: str | None = None,
    document_instruction: str | None = None,
    index: Annotated[str, typer.Option(help="flat | ivf | hnsw | auto")] = "flat",
    cache: Annotated[bool, typer.Option(help="Reuse cached corpus embeddings.")] = True,
) -> None:
    """Evaluate a model on a dataset split: prints the metrics table and writes a JSON report."""
    from core.datasets.io import load_dataset

    from core.evaluation.evaluator import EvalSpec, evaluate
    from core.indexing.faiss_index import IndexSpec
    from core.models.cache import EmbeddingCache
    from core.models.embedder import load_embedder
    from core.settings import get_settings

    settings = get_settings()
    ds = load_dataset(dataset, fmt, split=split)
    embedder = load_embedder(
        model,
        models_dir=settings.models_dir,
        device=settings.device,
        trust_remote_code=settings.trust_remote_code,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        query_instruction=query_instruction,
        document_instruction=document_instruction,
    )
    spec = EvalSpec(split=split, index=IndexSpec(kind=index))
    with stage_progress() as progress:
        report = evaluate(
            ds,
            embedder,
            spec,
            cache=EmbeddingCache(settings.cache_dir) if cache else None,
            progress=progress,
        )
    path = output or settings.reports_dir / f"eval-{ds.name}-{split}-{embedder.fingerprint}.json"
    report.save(path)
    print_report(report)
    console.print(f"report: {path}")


def print_report(report: Any) -> None:
    title = (
        f"{report.model} on {report.dataset} [{report.split}] — "
        f"{report.num_queries} queries, {report.num_documents} documents"
    )
    table = Table(title=title)
    for col in ("k", "nDCG", "MAP", "Recall", "Precision", "MRR", "Hit"):
        table.add_column(col, justify="right")
    for row in report.table():
        table.add_row(*row)
    console.print(table)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    console.print(f"time: {timing}; corpus cache hits: {report.cache.get('corpus_hits', 0)}")


def _flatten(data: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        if isinstance(value, dict):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value

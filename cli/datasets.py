"""Dataset commands: validate (with statistics), convert, split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.app import (
    ColumnsOpt,
    DropEmptyOpt,
    FormatOpt,
    TsvQuotesOpt,
    app,
    console,
    err,
    flatten,
    print_warnings,
    read_options,
)


@app.command()
def validate(
    path: Annotated[Path, typer.Argument(help="Dataset file or folder.")],
    fmt: FormatOpt = None,
    split: str = "train",
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Also measure lengths in this model's tokens (and count "
            "texts over its max sequence length).",
        ),
    ] = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
) -> None:
    """Validate a dataset and print its statistics and warnings."""
    from core.datasets.io import load_dataset
    from core.datasets.stats import ModelLengths, dataset_stats

    options = read_options(columns, drop_empty, tsv_quotes)
    ds = load_dataset(path, fmt, split=split, options=options)
    lengths = None
    if model:
        from core.services.models import embedder_for
        from core.settings import get_settings

        embedder = embedder_for(get_settings(), model, allow_paths=True)  # the operator's own
        lengths = ModelLengths.of(
            ds, model=model, max_seq_length=embedder.max_seq_length, count=embedder.count_tokens
        )
    stats = dataset_stats(ds, lengths).as_dict()
    stats.pop("warnings")
    checks = stats.pop("checks")
    table = Table(title=f"{ds.name} ({ds.source_format}) is valid", show_header=False)
    for key, value in flatten(stats):
        table.add_row(key, str(value))
    for name, result in checks.items():
        if isinstance(result, dict):
            table.add_row(f"checks.{name}", str(result["count"]))
    console.print(table)
    print_warnings(ds)
    print_checks(checks)


def print_checks(checks: dict) -> None:
    """The first records of each data check that found some (docs/quality-loop.md)."""
    for name, result in checks.items():
        if isinstance(result, dict) and result["count"]:
            shown = ", ".join(str(item) for item in result["items"][:5])
            err.print(f"data check {name}: {result['count']} ({shown})")


@app.command()
def convert(
    src: Path,
    dst: Path,
    to: Annotated[str, typer.Option("--to", help="Output format.")],
    fmt: FormatOpt = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
    split: Annotated[
        str | None,
        typer.Option(
            help="Split to write (single-split formats); the split a single-split "
            "input becomes. Default: all splits / 'train'."
        ),
    ] = None,
) -> None:
    """Convert a dataset between formats (BEIR, RAG JSON, FlagEmbedding, pairs, scored pairs)."""
    from core.datasets.io import load_dataset, save_dataset

    options = read_options(columns, drop_empty, tsv_quotes)
    ds = load_dataset(src, fmt, split=split or "train", options=options)
    print_warnings(ds)
    out = save_dataset(ds, dst, to, split=split)
    if split is None and len(ds.splits) > 1 and to in ("flag-jsonl", "pairs"):
        err.print(f"{to} holds one split: wrote 'train' of {', '.join(ds.splits)} (see --split)")
    console.print(f"wrote {to} dataset to {out}")


@app.command("split")
def split_cmd(
    path: Path,
    out: Path,
    val_fraction: Annotated[float, typer.Option(help="Share of queries held out.")] = 0.2,
    seed: int = 0,
    source: str = "train",
    fmt: FormatOpt = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
) -> None:
    """Split a split's queries into train/val (deterministic by seed); writes a BEIR folder."""
    from core.datasets.io import load_dataset, save_dataset
    from core.datasets.split import split_by_query

    options = read_options(columns, drop_empty, tsv_quotes)
    loaded = load_dataset(path, fmt, split=source, options=options)
    print_warnings(loaded)
    ds = split_by_query(loaded, source=source, val_fraction=val_fraction, seed=seed)
    save_dataset(ds, out, "beir")
    counts = ", ".join(f"{s}: {len(q)} queries" for s, q in sorted(ds.qrels.items()))
    console.print(f"wrote {out} ({counts})")

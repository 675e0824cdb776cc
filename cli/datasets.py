"""Dataset commands: validate (with statistics), convert, split."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.app import FormatOpt, app, console, flatten


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
    for key, value in flatten(stats):
        table.add_row(key, str(value))
    console.print(table)


@app.command()
def convert(
    src: Path,
    dst: Path,
    to: Annotated[str, typer.Option("--to", help="Output format.")],
    fmt: FormatOpt = None,
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

    ds = load_dataset(src, fmt, split=split or "train")
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

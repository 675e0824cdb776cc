"""The hard-negative mining command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.app import (
    ColumnsOpt,
    DatasetArg,
    DropEmptyOpt,
    FormatOpt,
    TsvQuotesOpt,
    app,
    console,
    err,
    print_warnings,
    read_options,
    stage_progress,
)
from core.errors import InvalidInput

KEEPS_NEGATIVES = ("flag-jsonl", "rag-json", "pairs")
"""Output formats that store negatives (BEIR and scored pairs have no place for them)."""


@app.command()
def mine(
    dataset: DatasetArg,
    model: Annotated[str, typer.Option("--model", "-m", help="Model reference.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the dataset.")],
    split: Annotated[str, typer.Option(help="Split whose queries get negatives.")] = "train",
    to: Annotated[
        str, typer.Option("--to", help=f"Output format: {' | '.join(KEEPS_NEGATIVES)}.")
    ] = "flag-jsonl",
    fmt: FormatOpt = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
    range_min: Annotated[int, typer.Option(help="First rank a negative may have.")] = 10,
    range_max: Annotated[int, typer.Option(help="Ranks retrieved; negatives rank below.")] = 100,
    num_negatives: int = 5,
    sampling: Annotated[str, typer.Option(help="random | top")] = "random",
    relative_margin: Annotated[
        float, typer.Option(help="Drop above p - |p| * margin (p: lowest positive); 0: off.")
    ] = 0.05,
    absolute_margin: Annotated[float | None, typer.Option(help="Drop above p - margin.")] = None,
    max_score: Annotated[float | None, typer.Option(help="Drop above this score.")] = None,
    seed: int = 42,
    report: Annotated[Path | None, typer.Option(help="Report JSON path.")] = None,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    query_instruction: str | None = None,
    document_instruction: str | None = None,
    index: Annotated[str, typer.Option(help="flat | ivf | hnsw | auto")] = "auto",
    cache: Annotated[bool, typer.Option(help="Reuse cached corpus embeddings.")] = True,
) -> None:
    """Mine hard negatives for a split's queries; writes the dataset and a JSON report."""
    from core.datasets.io import load_dataset, save_dataset
    from core.indexing.faiss_index import IndexSpec
    from core.mining import MiningSpec, mine_negatives
    from core.models.cache import EmbeddingCache
    from core.names import child_path, slug
    from core.services.models import embedder_for
    from core.settings import get_settings

    if to not in KEEPS_NEGATIVES:
        raise InvalidInput(
            f"format '{to}' cannot store negatives (use {', '.join(KEEPS_NEGATIVES)})", param="to"
        )
    spec = MiningSpec(
        split=split,
        range_min=range_min,
        range_max=range_max,
        num_negatives=num_negatives,
        sampling=sampling,  # type: ignore[arg-type]  # MiningSpec checks it
        relative_margin=relative_margin or None,  # 0 would equal --absolute-margin 0
        absolute_margin=absolute_margin,
        max_score=max_score,
        seed=seed,
        index=IndexSpec(kind=index),  # type: ignore[arg-type]  # resolved() checks it
    )
    settings = get_settings()
    ds = load_dataset(
        dataset, fmt, split=split, options=read_options(columns, drop_empty, tsv_quotes)
    )
    print_warnings(ds)
    embedder = embedder_for(
        settings,
        model,
        allow_paths=True,  # the operator's own command: local directories are fine
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        query_instruction=query_instruction,
        document_instruction=document_instruction,
    )
    with stage_progress() as progress:
        mined, result = mine_negatives(
            ds,
            embedder,
            spec,
            cache=EmbeddingCache(settings.cache_dir) if cache else None,
            progress=progress,
        )
    save_dataset(mined, output, to, split=split)
    name = f"mine-{slug(ds.name)}-{slug(split)}-{embedder.fingerprint}.json"
    path = report or child_path(settings.reports_dir, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.as_dict(), indent=1), "utf-8")
    print_mining_report(result.as_dict())
    console.print(f"wrote {to} dataset to {output}; report: {path}")


def print_mining_report(data: dict[str, Any]) -> None:
    per_query = data["negatives_per_query"]
    title = (
        f"{data['model']} on {data['dataset']} [{data['split']}] — {data['queries']} queries, "
        f"{data['negatives']} negatives ({per_query['mean']:.2f}/query, "
        f"min {per_query['min']}, max {per_query['max']}; {data['queries_short']} short)"
    )
    scores = Table(title=escape(title))
    for col in ("scores", "count", "mean", "p10", "p50", "p90"):
        scores.add_column(col, justify="right")
    for name, summary in data["scores"].items():
        values = (summary[k] for k in ("mean", "p10", "p50", "p90"))
        scores.add_row(
            name, str(summary["count"]), *("-" if v is None else f"{v:.4f}" for v in values)
        )
    console.print(scores)
    removed = Table(title=f"{data['candidates']} candidates")
    removed.add_column("removed by")
    removed.add_column("candidates", justify="right")
    removed.add_column("share", justify="right")
    for name, count in [*data["removed"].items(), ("(kept)", data["negatives"])]:
        share = count / data["candidates"] if data["candidates"] else 0.0
        removed.add_row(name.replace("_", " "), str(count), f"{share:.1%}")
    console.print(removed)
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in data["timings"].items())
    console.print(f"time: {timing}; corpus cache hits: {data['cache'].get('corpus_hits', 0)}")
    if review := data.get("review"):
        console.print(
            f"review: the {len(review)} negatives scored closest to a positive are in the "
            f"report (smallest margin {review[0]['margin']:.4f})"
        )
    if data["queries_without_negatives"]:
        err.print(
            f"[yellow]warning[/] {data['queries_without_negatives']} queries got no negative: "
            "raise --range-max or lower the margin"
        )

"""The nudge command: tune a corpus's embeddings toward its training queries, write an index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
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
from core.evaluation.metrics import SUMMARY_METRICS

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


@app.command()
def nudge(
    dataset: DatasetArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Index directory to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="Model reference.")] = DEFAULT_MODEL,
    variant: Annotated[str, typer.Option(help="nudge-n | nudge-m")] = "nudge-n",
    fmt: FormatOpt = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
    train_split: str = "train",
    val_split: Annotated[str | None, typer.Option(help="Default: hold out train queries.")] = None,
    val_fraction: Annotated[float, typer.Option(help="Held out when no val split.")] = 0.2,
    test_split: Annotated[str, typer.Option(help="Scored after tuning ('' for none).")] = "test",
    steps: Annotated[str | None, typer.Option(help="Candidate steps, e.g. 0.1,0.2")] = None,
    seed: int = 0,
    batch_size: int = 64,
    max_seq_length: int | None = None,
    cache: Annotated[bool, typer.Option(help="Reuse cached corpus embeddings.")] = True,
) -> None:
    """NUDGE: move the embeddings of documents with training queries toward those queries
    (step chosen on held-out training queries) and write them as a Faiss index."""
    from core.datasets.io import load_dataset
    from core.indexing.faiss_index import IndexSpec, VectorIndex
    from core.models.cache import EmbeddingCache
    from core.nudge import NudgeSpec, run_nudge
    from core.services.models import embedder_for
    from core.settings import get_settings

    settings = get_settings()
    ds = load_dataset(
        dataset, fmt, split=train_split, options=read_options(columns, drop_empty, tsv_quotes)
    )
    print_warnings(ds)
    if test_split and test_split not in ds.qrels:
        err.print(f"no '{test_split}' split: nothing is scored after tuning")
    spec = NudgeSpec(
        variant=variant,  # type: ignore[arg-type]  (checked by the spec)
        train_split=train_split,
        val_split=val_split,
        val_fraction=val_fraction,
        seed=seed,
        test_split=test_split if test_split in ds.qrels else None,
        steps=tuple(float(s) for s in steps.split(",")) if steps else None,
    )
    embedder = embedder_for(
        settings,
        model,
        allow_paths=True,  # the operator's own command: local directories are fine
        batch_size=batch_size,
        max_seq_length=max_seq_length,
    )
    with stage_progress() as progress:
        result = run_nudge(
            ds,
            embedder,
            spec,
            cache=EmbeddingCache(settings.cache_dir) if cache else None,
            progress=progress,
        )
    VectorIndex.build(result.vectors, result.doc_ids, IndexSpec(kind="flat")).save(output)
    report = result.report.to_dict()
    (output / "nudge.json").write_text(json.dumps(report, ensure_ascii=False, indent=1), "utf-8")
    print_nudge(report)
    console.print(f"index: {output}")


def print_nudge(report: dict[str, Any]) -> None:
    table = Table(
        title=f"{report['variant']} on {report['dataset']}: {report['docs_moved']} of "
        f"{report['num_documents']} documents moved, step {report['step']}"
    )
    for col in ("metric", "val before", "val after", "test before", "test after", "change"):
        table.add_column(col, justify="right")
    for name in SUMMARY_METRICS:
        cells = [report[part].get(name) for part in ("val_before", "val_after")]
        before, after = report["test_before"].get(name), report["test_after"].get(name)
        cells += [before, after]
        change = f"{after - before:+.4f}" if before is not None and after is not None else "–"
        table.add_row(name, *(f"{c:.4f}" if c is not None else "–" for c in cells), change)
    console.print(table)
    seconds = ", ".join(f"{k} {v:.1f}s" for k, v in report["timings"].items())
    console.print(
        f"{report['train_queries']} training queries, {report['val_queries']} to choose the "
        f"step; time: {seconds}"
    )

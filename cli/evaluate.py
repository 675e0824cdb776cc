"""Model and evaluation commands."""

from __future__ import annotations

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
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
) -> None:
    """Evaluate a model on a dataset split: prints the metrics table and writes a JSON report."""
    from core.datasets.io import load_dataset
    from core.evaluation.evaluator import EvalSpec, evaluate
    from core.indexing.faiss_index import IndexSpec
    from core.models.cache import EmbeddingCache
    from core.names import child_path, slug
    from core.services.models import embedder_for
    from core.settings import get_settings

    settings = get_settings()
    ds = load_dataset(
        dataset, fmt, split=split, options=read_options(columns, drop_empty, tsv_quotes)
    )
    print_warnings(ds)
    judged = ds.split_qrels(split)  # a dataset with its own splits refuses other names
    err.print(f"split '{split}': {len(judged)} judged queries (splits: {', '.join(ds.splits)})")
    embedder = embedder_for(
        settings,
        model,
        allow_paths=True,  # the operator's own command: local directories are fine
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
    name = f"eval-{slug(ds.name)}-{slug(split)}-{embedder.fingerprint}.json"
    path = output or child_path(settings.reports_dir, name)
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
    if report.truncated:
        console.print(
            f"truncated at {report.model_config['max_seq_length']} tokens: "
            f"{report.truncated['documents']} documents, {report.truncated['queries']} queries"
        )
    timing = ", ".join(f"{k} {v:.2f}s" for k, v in report.timings.items())
    console.print(f"time: {timing}; corpus cache hits: {report.cache.get('corpus_hits', 0)}")

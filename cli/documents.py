"""Raw-document commands: ingest a folder into a chunked corpus, synthesize queries for it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from cli.app import app, console, err, stage_progress

ModelOpt = Annotated[
    str,
    typer.Option("--model", "-m", help="The target model: chunks fit its tokenizer and length."),
]


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=title, show_header=False)
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


@app.command()
def ingest(
    folder: Annotated[Path, typer.Argument(help="A folder (or one file) of raw documents.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The corpus folder to write.")],
    model: ModelOpt = "sentence-transformers/all-MiniLM-L6-v2",
    max_tokens: Annotated[
        int | None, typer.Option(help="Tokens per chunk (default: the model's max length).")
    ] = None,
    overlap: Annotated[int, typer.Option(help="Tokens shared by neighbouring chunks.")] = 20,
) -> None:
    """Read .txt .md .html .pdf .docx and jsonl {id, text, title?} files, chunk them with the
    model's tokenizer and write a corpus-only BEIR folder (provenance in each chunk's metadata)
    and ingest_report.json; files that cannot be read are listed with the reason."""
    from core.datasets.io import save_dataset
    from core.ingest import ChunkSpec, files_under, ingest_files
    from core.services.documents import chunker_for
    from core.settings import get_settings

    chunker = chunker_for(get_settings(), model, ChunkSpec(max_tokens, overlap), allow_paths=True)
    with stage_progress() as progress:
        result = ingest_files(
            files_under(folder),
            chunker,
            name=output.name,
            progress=lambda d, t: progress("read_and_chunk", d, t),
        )
    report = result.report.as_dict()
    if result.dataset.corpus:
        save_dataset(result.dataset, output, "beir")
    output.mkdir(parents=True, exist_ok=True)
    (output / "ingest_report.json").write_text(json.dumps(report, indent=1), "utf-8")
    skipped = report.pop("skipped")
    console.print(_table(f"ingested {folder} into {output}", report))
    for item in skipped:
        line = f"{item['file']}: [{item['code']}] {item['message']}"
        err.print(f"[yellow]skipped[/] {escape(line)}", highlight=False)
    if not result.dataset.corpus:
        raise typer.Exit(2)


@app.command()
def synthesize(
    dataset: Annotated[Path, typer.Option("--dataset", "-d", help="A corpus (BEIR folder).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The dataset folder to write.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="Base model of the round-trip filter.")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    generators: Annotated[
        str, typer.Option(help="Comma-separated: title, inverse_cloze, crop, llm.")
    ] = "inverse_cloze",
    round_trip_k: Annotated[
        int, typer.Option(help="Keep queries whose chunk is in the base model's top k (0: off).")
    ] = 10,
    max_chunks: Annotated[int | None, typer.Option(help="Chunks to make queries for.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="LLM token budget.")] = None,
    queries_per_chunk: Annotated[int, typer.Option(help="LLM questions per chunk.")] = 1,
    max_seq_length: Annotated[
        int | None, typer.Option(help="The round trip's max length (default: the model's).")
    ] = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> None:
    """Synthesize queries for a corpus, filter them and split by source document into
    train / val / test; writes a BEIR folder and synthesis_report.json. A dataset with its own
    labeled 'test' split keeps it as the test split. LLM answers are kept beside the output
    (OUTPUT.llm-answers.jsonl), so that a second run asks nothing twice."""
    from core.datasets.io import load_dataset, save_dataset
    from core.services.documents import run_synthesis
    from core.services.models import embedder_for
    from core.settings import get_settings
    from core.synthesis.spec import SynthesisSpec

    spec = SynthesisSpec(
        generators=tuple(g.strip() for g in generators.split(",") if g.strip()),  # type: ignore[arg-type]
        queries_per_chunk=queries_per_chunk,
        max_chunks=max_chunks,
        max_tokens=max_tokens,
        round_trip_k=round_trip_k,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    corpus = load_dataset(dataset, "beir")
    settings = get_settings()
    embedder = (
        embedder_for(settings, model, allow_paths=True, max_seq_length=max_seq_length)
        if round_trip_k
        else None
    )
    test = corpus.split_qrels("test") if "test" in corpus.qrels else None
    with stage_progress() as progress:
        ds, report = run_synthesis(
            settings,
            corpus,
            spec,
            embedder=embedder,
            answers=output.with_name(output.name + ".llm-answers.jsonl"),
            progress=progress,
            user_test=(corpus.queries, test) if test else None,
        )
    save_dataset(ds, output, "beir")
    (output / "synthesis_report.json").write_text(json.dumps(report.as_dict(), indent=1), "utf-8")
    console.print(_table("candidates per generator", report.candidates))
    console.print(_table("candidates left after each filter", report.kept_after))
    console.print(_table(f"wrote {output}", report.splits))

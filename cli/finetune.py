"""The fine-tune command: full, LoRA or query adapter, with before/after metrics."""

from __future__ import annotations

import json
from dataclasses import fields
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
from core.datasets.options import ReadOptions
from core.evaluation.metrics import HEADLINE_METRICS


@app.command()
def finetune(  # one option per spec field
    dataset: DatasetArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model.")] = None,
    method: Annotated[str | None, typer.Option(help="full | lora | adapter")] = None,
    spec_file: Annotated[
        Path | None, typer.Option("--spec", help="JSON spec; options override it.")
    ] = None,
    fmt: FormatOpt = None,
    columns: ColumnsOpt = None,
    drop_empty: DropEmptyOpt = False,
    tsv_quotes: TsvQuotesOpt = False,
    train_split: str = "train",
    val_split: str = "val",
    val_fraction: Annotated[float, typer.Option(help="Held out when no val split.")] = 0.2,
    mine_negatives: Annotated[
        bool | None, typer.Option(help="Mine hard negatives if the data has none (default).")
    ] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = True,
    epochs: float | None = None,
    learning_rate: Annotated[float | None, typer.Option("--lr")] = None,
    batch_size: int | None = None,
    warmup_ratio: float | None = None,
    max_seq_length: int | None = None,
    seed: int | None = None,
    loss: Annotated[str | None, typer.Option(help="mnrl | cached_mnrl | cosent")] = None,
    scale: float | None = None,
    mini_batch_size: int | None = None,
    num_hard_negatives: int | None = None,
    matryoshka_dims: Annotated[str | None, typer.Option(help="e.g. 384,256,128")] = None,
    query_instruction: str | None = None,
    document_instruction: str | None = None,
    fp16: bool | None = None,
    bf16: bool | None = None,
    gradient_checkpointing: bool | None = None,
    eval_steps: int | None = None,
    save_steps: int | None = None,
    logging_steps: int | None = None,
    lora_rank: int | None = None,
    lora_alpha: int | None = None,
    lora_dropout: float | None = None,
    lora_target_modules: Annotated[str | None, typer.Option(help="e.g. query,value")] = None,
    lora_learning_rate: Annotated[float | None, typer.Option("--lora-lr")] = None,
    adapter_hidden_dim: int | None = None,
    adapter_epochs: int | None = None,
    adapter_learning_rate: Annotated[float | None, typer.Option("--adapter-lr")] = None,
) -> None:
    """Fine-tune a model on a dataset's train split; prints validation metrics before/after."""
    from core.training.spec import FinetuneSpec

    given = {k: v for k, v in locals().items() if v is not None}
    data: dict[str, Any] = json.loads(spec_file.read_text("utf-8")) if spec_file else {}
    data |= {f.name: given[f.name] for f in fields(FinetuneSpec) if f.name in given}
    if model is not None:
        data["base_model"] = model
    for name in ("matryoshka_dims", "lora_target_modules"):
        if isinstance(data.get(name), str):
            parts = [p.strip() for p in data[name].split(",") if p.strip()]
            data[name] = [int(p) for p in parts] if name == "matryoshka_dims" else parts
    spec = FinetuneSpec.from_dict(data)
    splits = (train_split, val_split)
    options = read_options(columns, drop_empty, tsv_quotes)
    result = _run(spec, dataset, fmt, output, splits, val_fraction, resume=resume, options=options)
    print_comparison(result)
    console.print(f"model: {result.model_dir}")


def _run(
    spec: Any,
    path: Path,
    fmt: str | None,
    output: Path,
    splits: tuple[str, str],
    val_fraction: float,
    *,
    resume: bool,
    options: ReadOptions | None = None,
) -> Any:
    from core.datasets.io import load_dataset
    from core.datasets.split import split_by_query
    from core.models.cache import EmbeddingCache
    from core.settings import get_settings
    from core.training.finetune import run_finetune

    settings = get_settings()
    cache = EmbeddingCache(settings.cache_dir)
    ds = load_dataset(path, fmt, split=splits[0], options=options)
    print_warnings(ds)
    train, val = splits
    if val not in ds.qrels and train in ds.qrels:
        ds = split_by_query(ds, source=train, val_fraction=val_fraction, seed=spec.seed)
        err.print(f"split '{train}' into '{train}' and '{val}' ({val_fraction:.0%} held out)")
    with stage_progress() as progress:
        return run_finetune(
            spec,
            ds,
            output,
            train_split=train,
            val_split=val,
            reporter=CliReporter(progress),
            resume=resume,
            models_dir=settings.models_dir,
            cache=cache,
        )


class CliReporter:
    """Shows training progress as a bar and each evaluation as a line."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        self.progress("train", step, total)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        err.print(f"step {step}: val ndcg@10 {metrics.get('ndcg@10', float('nan')):.4f}")

    def on_event(self, message: str) -> None:
        err.print(message)


def print_comparison(result: Any) -> None:
    table = Table(title=f"{result.method} fine-tune: validation metrics (best step)")
    for col in ("metric", "before", "after", "change"):
        table.add_column(col, justify="right")
    for name in HEADLINE_METRICS:
        if name in result.metrics_after:
            before, after = result.metrics_before.get(name, 0.0), result.metrics_after[name]
            table.add_row(name, f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}")
    console.print(table)
    console.print(
        f"training: {result.train_seconds:.0f} s, {result.samples_per_second:.1f} samples/s, "
        f"{result.train_examples} examples"
    )

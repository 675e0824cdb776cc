"""The fine-tune command: full, LoRA or query adapter, with before/after metrics."""

from __future__ import annotations

import inspect
import json
import typing
from dataclasses import fields
from pathlib import Path
from typing import Annotated, Any, Literal

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


def _command(
    dataset: DatasetArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Base model.")] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="full | lora | adapter | colbert; default lora for an LLM decoder, else full"
        ),
    ] = None,
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
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = True,
) -> None:
    """The options that are not FinetuneSpec fields (those are added from the spec)."""


SPEC_PANEL = "Training settings (FinetuneSpec; unset ones keep its defaults)"
ALIASES = {
    "learning_rate": ("--lr",),
    "lora_learning_rate": ("--lora-lr",),
    "adapter_learning_rate": ("--adapter-lr",),
}
LISTS = {"matryoshka_dims": int, "lora_target_modules": str}  # comma-separated on the CLI


def _spec_options() -> list[inspect.Parameter]:
    """One option per FinetuneSpec field, its type, choices and default from the spec."""
    from core.training.spec import FinetuneSpec

    hints = typing.get_type_hints(FinetuneSpec)
    options = []
    for field in fields(FinetuneSpec):
        if field.name in ("method", "base_model"):
            continue
        kind, choices = _option_type(hints[field.name])
        shown = field.default
        if field.name in LISTS:
            kind, shown = str, ",".join(map(str, field.default or ())) or "none"
        help = f"{' | '.join(choices)}; default {shown}" if choices else f"default {shown}"
        flag = field.name.replace("_", "-")
        flag = f"--{flag}/--no-{flag}" if kind is bool else f"--{flag}"
        names = (flag, *ALIASES.get(field.name, ()))
        option = typer.Option(None, *names, help=help, rich_help_panel=SPEC_PANEL)
        options.append(
            inspect.Parameter(
                field.name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind | None
            )
        )
    return options


def _option_type(hint: Any) -> tuple[type, tuple[str, ...]]:
    """The CLI type of a spec field (less ``None``), and its choices when it has some."""
    if typing.get_origin(hint) is Literal:
        return str, typing.get_args(hint)
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if hint in (int, float, str, bool) or not args:
        return hint, ()
    return _option_type(args[0]) if len(args) == 1 else (str, ())


def finetune(**given: Any) -> None:
    """Fine-tune a model on a dataset's train split; prints validation metrics before/after."""
    from core.training.spec import FinetuneSpec

    spec_file, model = given.pop("spec_file"), given.pop("model")
    data: dict[str, Any] = json.loads(spec_file.read_text("utf-8")) if spec_file else {}
    data |= {f.name: given[f.name] for f in fields(FinetuneSpec) if given.get(f.name) is not None}
    if model is not None:
        data["base_model"] = model
    if "method" not in data and "base_model" in data:  # LoRA for an LLM decoder
        from core.models.decoder import default_method
        from core.settings import get_settings

        data["method"] = default_method(data["base_model"], get_settings().models_dir)
    for name, item in LISTS.items():
        if isinstance(data.get(name), str):
            data[name] = [item(p.strip()) for p in data[name].split(",") if p.strip()]
    spec = FinetuneSpec.from_dict(data)
    splits = (given["train_split"], given["val_split"])
    options = read_options(given["columns"], given["drop_empty"], given["tsv_quotes"])
    result = _run(
        spec,
        given["dataset"],
        given["fmt"],
        given["output"],
        splits,
        given["val_fraction"],
        resume=given["resume"],
        options=options,
    )
    print_comparison(result)
    console.print(f"model: {result.model_dir}")


_parameters = [*inspect.signature(_command, eval_str=True).parameters.values(), *_spec_options()]
finetune.__signature__ = inspect.Signature(_parameters)  # type: ignore[attr-defined]
finetune.__annotations__ = {p.name: p.annotation for p in _parameters}
app.command()(finetune)


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
            teacher=_teacher(spec, ds, settings, cache),
        )


def _teacher(spec: Any, ds: Any, settings: Any, cache: Any) -> Any:
    """The teacher reranker's (cached) scores when the spec distills one."""
    if spec.teacher_reranker is None:
        return None
    from core.reranking.teachers import reranker_teacher
    from core.services.models import reranker_for

    reranker = reranker_for(settings, spec.teacher_reranker, allow_paths=True)
    return reranker_teacher(ds, reranker, cache)


class CliReporter:
    """Shows training progress as a bar and each evaluation as a line."""

    def __init__(self, progress: Any) -> None:
        self.progress = progress

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        """Losses are in the model's history; the bar moves in ``on_progress``."""

    def on_progress(self, stage: str, done: int, total: int) -> None:
        self.progress(stage, done, total)

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

"""Reranker commands: fine-tune a cross-encoder, evaluate retrieve → rerank."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from cli.app import DatasetArg, FormatOpt, app, console, err, print_warnings, stage_progress
from cli.finetune import CliReporter

ROWS = ("ndcg@10", "mrr@10", "map@10", "recall@10")


@app.command("rerank-finetune")
def rerank_finetune(
    dataset: DatasetArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Reranker directory to write.")],
    model: Annotated[
        str, typer.Option("--model", "-m", help="A reranker checkpoint or an encoder.")
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    method: Annotated[str, typer.Option(help="full | lora")] = "full",
    loss: Annotated[str, typer.Option(help="bce | lambda | listnet | margin_mse")] = "bce",
    epochs: float = 1.0,
    lr: float = 2e-5,
    batch_size: int = 16,
    max_seq_length: int = 256,
    num_negatives: int = 4,
    candidates: Annotated[int, typer.Option(help="First-stage top k per validation query.")] = 20,
    teacher: Annotated[str | None, typer.Option(help="margin_mse: teacher bi-encoder.")] = None,
    first_stage: Annotated[
        str | None, typer.Option(help="Mines and retrieves; default base.")
    ] = None,
    fmt: FormatOpt = None,
    train_split: str = "train",
    val_split: str = "val",
    val_fraction: float = 0.2,
    resume: Annotated[bool, typer.Option(help="Continue from the last checkpoint.")] = True,
) -> None:
    """Fine-tune a cross-encoder reranker; prints validation reranking before/after and the
    fusion weight chosen there (0: the reranker did not help)."""
    from core.datasets.io import load_dataset
    from core.datasets.split import split_by_query
    from core.models.cache import EmbeddingCache
    from core.reranking.finetune import run_rerank_finetune
    from core.reranking.fusion import verdict
    from core.reranking.spec import RerankSpec
    from core.settings import get_settings

    spec = RerankSpec(
        method=method,  # type: ignore[arg-type]
        base_model=model,
        loss=loss,  # type: ignore[arg-type]
        epochs=epochs,
        learning_rate=lr,
        batch_size=batch_size,
        max_seq_length=max_seq_length,
        num_negatives=num_negatives,
        candidates=candidates,
        teacher_model=teacher,
    )
    settings = get_settings()
    ds = load_dataset(dataset, fmt, split=train_split)
    print_warnings(ds)
    if val_split not in ds.qrels and train_split in ds.qrels:
        ds = split_by_query(ds, source=train_split, val_fraction=val_fraction, seed=spec.seed)
        err.print(f"split '{train_split}' into '{train_split}' and '{val_split}'")
    with stage_progress() as progress:
        result = run_rerank_finetune(
            spec,
            ds,
            output,
            train_split=train_split,
            val_split=val_split,
            first_stage=first_stage,
            reporter=CliReporter(progress),
            resume=resume,
            models_dir=settings.models_dir,
            cache=EmbeddingCache(settings.cache_dir),
        )
    fusion = result.fusion
    table = Table(title=f"reranker on '{val_split}' (top {candidates} of the first stage)")
    for col in ("metric", "first stage", "reranked before", "reranked after", "fused"):
        table.add_column(col, justify="right")
    for name in ROWS:
        if name in result.metrics_after:
            table.add_row(
                name,
                f"{fusion.get('first_stage', {}).get(name, 0):.4f}",
                f"{result.metrics_before.get(name, 0):.4f}",
                f"{result.metrics_after[name]:.4f}",
                f"{fusion.get('fused', {}).get(name, 0):.4f}",
            )
    console.print(table)
    if fusion:
        first, fused = fusion["first_stage"]["ndcg@10"], fusion["fused"]["ndcg@10"]
        console.print(verdict(fusion["weight"], first, fused))
    console.print(f"reranker: {result.model_dir}")


@app.command("rerank-eval")
def rerank_eval(
    dataset: DatasetArg,
    reranker: Annotated[str, typer.Option("--reranker", "-r", help="Reranker reference.")],
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="First-stage embedder.")
    ] = None,
    split: str = "test",
    top_k: Annotated[int, typer.Option(help="First-stage documents reranked per query.")] = 100,
    fusion_split: Annotated[
        str | None, typer.Option(help="Split choosing the fusion weight (default: val).")
    ] = None,
    own_candidates: Annotated[
        bool, typer.Option(help="Rerank the dataset's own candidates (judged + negatives).")
    ] = False,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Report JSON.")] = None,
    fmt: FormatOpt = None,
) -> None:
    """Retrieve with --model, rerank its top k, fuse: first stage, reranked and fused side by
    side; or, with --own-candidates, reranking-only MAP / MRR@10 / nDCG@10."""
    from core.datasets.io import load_dataset
    from core.models.cache import EmbeddingCache
    from core.reranking.evaluate import evaluate_candidates
    from core.reranking.pipeline import rerank_embedder
    from core.services.models import embedder_for, reranker_for
    from core.settings import get_settings

    settings = get_settings()
    ds = load_dataset(dataset, fmt, split=split)
    print_warnings(ds)
    scorer = reranker_for(settings, reranker, allow_paths=True)
    if own_candidates:
        result: dict[str, Any] = evaluate_candidates(ds, scorer, split)
        console.print(json.dumps(result["metrics"], indent=1))
    else:
        if model is None:
            raise typer.BadParameter("--model (the first stage) is required", param_hint="--model")
        embedder = embedder_for(settings, model, allow_paths=True)
        report = rerank_embedder(
            ds,
            embedder,
            scorer,
            split=split,
            top_k=top_k,
            val_split=fusion_split,
            cache=EmbeddingCache(settings.cache_dir),
        )
        result = report.to_dict()
        print_rerank(report)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=1), "utf-8")
        console.print(f"report: {output}")


def print_rerank(report: Any) -> None:
    table = Table(
        title=f"{report.first_stage} → {report.reranker} [{report.split}], top {report.top_k}"
    )
    for col in ("metric", "first stage", "reranked", f"fused (w={report.weight:.2f})"):
        table.add_column(col, justify="right")
    for name in ROWS:
        table.add_row(
            name, *(f"{report.metrics[k][name]:.4f}" for k in ("first_stage", "reranked", "fused"))
        )
    console.print(table)
    console.print(f"weight from {report.weight_from}; {report.verdict}")
    latency = report.latency
    console.print(
        f"rerank latency: {latency['mean_ms']:.0f} ms/query mean, p95 {latency['p95_ms']:.0f} ms, "
        f"{latency['pairs_per_second']:.1f} pairs/s"
    )

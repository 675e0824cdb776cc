"""The merge and search commands: LM-Cocktail merging against forgetting, and a bounded recipe
search on the validation split (the same domain code as the merge and search jobs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from cli.app import DatasetArg, app, console, err, print_warnings

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ValSplit = Annotated[str, typer.Option(help="Held out of train when the dataset lacks it.")]


def _training_dataset(path: Path, train: str, val: str, val_fraction: float) -> Any:
    """The dataset with ``val`` held out of ``train`` (by query, seed 0) as finetune does."""
    from core.datasets.io import load_dataset
    from core.datasets.split import split_by_query

    ds = load_dataset(path, split=train)
    print_warnings(ds)
    if val not in ds.qrels:
        ds = split_by_query(ds, source=train, val_fraction=val_fraction, seed=0)
        err.print(f"split '{train}' into '{train}' and '{val}' ({val_fraction:.0%} held out)")
    return ds


@app.command()
def merge(
    dataset: DatasetArg,
    tuned: Annotated[list[str], typer.Option("--tuned", "-t", help="A tuned model (repeat).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Model directory to write.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The base model.")] = DEFAULT_MODEL,
    forgetting: Annotated[
        Path | None, typer.Option(help="A dataset not trained on: its score is kept.")
    ] = None,
    forgetting_split: str = "train",
    weights: Annotated[str | None, typer.Option(help="Fixed, base first: 0.4,0.6")] = None,
    grid_step: float = 0.1,
    trials: int = 24,
    max_forgetting: float = 0.005,
    train_split: str = "train",
    val_split: ValSplit = "val",
    val_fraction: float = 0.2,
) -> None:
    """Merge tuned models with their base (LM-Cocktail); the weights are chosen on validation
    and the forgetting set, and written with the model's card."""
    from core.datasets.io import load_dataset
    from core.models.cache import EmbeddingCache
    from core.models.embedder import load_embedder
    from core.settings import get_settings
    from core.training.merge import MergeSpec, run_merge

    cache = EmbeddingCache(get_settings().cache_dir)
    ds = _training_dataset(dataset, train_split, val_split, val_fraction)
    other = (load_dataset(forgetting), forgetting_split) if forgetting else None
    fixed = tuple(float(w) for w in weights.split(",")) if weights else None
    spec = MergeSpec(
        weights=fixed, grid_step=grid_step, trials=trials, max_forgetting=max_forgetting
    )
    base = load_embedder(model)
    result = run_merge(
        base,
        [load_embedder(t) for t in tuned],
        target=(ds, val_split),
        forgetting=other,
        output_dir=output,
        spec=spec,
        cache=cache,
        on_event=err.print,
    )
    console.print((result.model_dir / "README.md").read_text("utf-8"))
    console.print(f"model: {result.model_dir}")


@app.command()
def search(
    dataset: DatasetArg,
    output: Annotated[Path, typer.Option("--output", "-o", help="Directory of the trials.")],
    model: Annotated[str, typer.Option("--model", "-m", help="The base model.")] = DEFAULT_MODEL,
    method: str = "full",
    trials: int = 10,
    minutes: Annotated[float | None, typer.Option(help="No trial starts after this.")] = None,
    params: Annotated[
        str, typer.Option(help="Searched: learning_rate,epochs,scale,num_hard_negatives,batch_size")
    ] = "learning_rate,epochs,scale,num_hard_negatives,batch_size",
    spec_file: Annotated[Path | None, typer.Option(help="FinetuneSpec JSON: the start.")] = None,
    train_split: str = "train",
    val_split: ValSplit = "val",
    val_fraction: float = 0.2,
) -> None:
    """Search a fine-tune's recipe on the validation split (Optuna); keep the best model."""
    from core.models.cache import EmbeddingCache
    from core.settings import get_settings
    from core.training.recipe_search import SearchSpec, search_recipe
    from core.training.spec import FinetuneSpec

    settings = get_settings()
    start: dict[str, Any] = json.loads(spec_file.read_text("utf-8")) if spec_file else {}
    base = FinetuneSpec.from_dict({**start, "method": method, "base_model": model})
    names = tuple(p.strip() for p in params.split(",") if p.strip())
    ds = _training_dataset(dataset, train_split, val_split, val_fraction)
    result = search_recipe(
        base,
        ds,
        output,
        train_split=train_split,
        val_split=val_split,
        spec=SearchSpec(trials=trials, minutes=minutes, params=names),
        models_dir=settings.models_dir,
        cache=EmbeddingCache(settings.cache_dir),
    )
    for trial in result.trials:
        console.print(f"trial {trial['number']}: {trial['value']:.4f}  {trial['params']}")
    console.print(f"best {result.metric} {result.value:.4f} (default {result.default_value:.4f})")
    console.print(f"model: {result.model_dir} (recipe.json beside it)")

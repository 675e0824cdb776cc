"""A bounded hyper-parameter search for a fine-tune, scored on the validation split only.

Optuna (TPE, seeded) proposes the learning rate, epochs, MNRL scale, hard negatives per query
and batch size; each trial is a whole ``run_finetune`` on the train split, scored by its best
validation checkpoint. The default recipe is trial 0, so the best found is never worse on
validation than the default. The budget is a number of trials and/or minutes (a trial that
has started finishes). The search sees a copy of the dataset that holds only the train and
validation judgments: the test split is never read.

Example::

    found = search_recipe(FinetuneSpec(method="adapter"), ds, Path("search"),
                          train_split="train", val_split="val", spec=SearchSpec(trials=8))
    found.params  # {"adapter_learning_rate": ..., "adapter_epochs": ..., ...}
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.models.cache import EmbeddingCache
from core.safe_values import check_range
from core.training.finetune import run_finetune
from core.training.hooks import CancelCheck, LogReporter, Reporter
from core.training.spec import FinetuneSpec

RECIPE_FILE = "recipe.json"
MODEL = "model"
SEARCHABLE = ("learning_rate", "epochs", "scale", "num_hard_negatives", "batch_size")
# The field each searched name sets, by method (the adapter trains on cached vectors with
# its own rate and epoch count; LoRA with its own rate).
FIELD = {
    "adapter": {"learning_rate": "adapter_learning_rate", "epochs": "adapter_epochs"},
    "lora": {"learning_rate": "lora_learning_rate"},
}

LEARNING_RATES = {"adapter": (1e-4, 3e-2), "lora": (5e-5, 1e-3)}  # else (5e-6, 1e-4)


@dataclass(frozen=True)
class SearchSpec:
    """The budget (``trials``, and ``minutes`` when set) and what is searched."""

    trials: int = 10
    minutes: float | None = None
    params: tuple[str, ...] = SEARCHABLE
    metric: str = "ndcg@10"
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self.trials, 1, 200, param="trials")
        if self.minutes is not None:
            check_range(self.minutes, 0.01, 10080, param="minutes")
        if unknown := [p for p in self.params if p not in SEARCHABLE]:
            raise InvalidInput(f"'{unknown[0]}' cannot be searched", param="params")
        if not self.params:
            raise InvalidInput("name at least one parameter to search", param="params")


@dataclass
class SearchResult:
    """The best recipe (spec fields), its validation score, every trial, the kept model."""

    params: dict[str, Any]
    value: float
    metric: str
    trials: list[dict[str, Any]]
    model_dir: Path
    seconds: float
    default_value: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_dir": str(self.model_dir)}


def only_splits(ds: RetrievalDataset, splits: tuple[str, ...]) -> RetrievalDataset:
    """``ds`` with the judgments of ``splits`` only (the others are not even looked at)."""
    return replace(ds, qrels={s: ds.qrels[s] for s in dict.fromkeys(splits)})


def suggest(trial: Any, method: str, names: tuple[str, ...]) -> dict[str, Any]:
    """One trial's values, as ``FinetuneSpec`` fields of ``method``."""
    field_of = FIELD.get(method, {})
    values: dict[str, Any] = {}
    for name in names:
        if name == "learning_rate":
            low, high = LEARNING_RATES.get(method, (5e-6, 1e-4))
            value: Any = trial.suggest_float(name, low, high, log=True)
        elif name == "epochs" and method == "adapter":
            value = trial.suggest_int(name, 5, 60, step=5)
        elif name == "epochs":
            value = float(trial.suggest_int(name, 1, 4))
        elif name == "scale":
            value = trial.suggest_float(name, 10.0, 50.0, step=5.0)
        elif name == "num_hard_negatives":
            value = trial.suggest_int(name, 0, 3)
        else:
            value = trial.suggest_categorical(name, [16, 32, 64])
        values[field_of.get(name, name)] = value
    return values


def default_values(spec: FinetuneSpec, names: tuple[str, ...]) -> dict[str, Any]:
    """The trial that reproduces ``spec``'s own recipe (Optuna's names)."""
    field_of = FIELD.get(spec.method, {})
    values = {n: getattr(spec, field_of.get(n, n)) for n in names}
    if "scale" in values:
        values["scale"] = spec.loss_scale
    if "epochs" in values and spec.method != "adapter":
        values["epochs"] = round(values["epochs"])
    return values


def search_recipe(
    base: FinetuneSpec,
    dataset: RetrievalDataset,
    output_dir: Path,
    *,
    train_split: str,
    val_split: str,
    spec: SearchSpec = SearchSpec(),
    reporter: Reporter | None = None,
    should_cancel: CancelCheck | None = None,
    models_dir: Path | None = None,
    allow_paths: bool = True,
    cache: EmbeddingCache | None = None,
) -> SearchResult:
    """Run the trials; keep the best trial's model in ``output_dir/model`` with its recipe."""
    import optuna

    if val_split not in dataset.qrels or val_split == train_split:
        raise InvalidInput("the search needs a validation split apart from train", param="val")
    reporter = reporter or LogReporter()
    ds = only_splits(dataset, (train_split, val_split))
    start, trials = time.perf_counter(), []
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed)
    )
    study.enqueue_trial(default_values(base, spec.params))

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, base.method, spec.params)
        trial_spec = replace(base, **values)
        reporter.on_event(f"trial {trial.number}: {values}")
        began = time.perf_counter()
        result = run_finetune(
            trial_spec,
            ds,
            output_dir / f"trial-{trial.number}",
            train_split=train_split,
            val_split=val_split,
            reporter=reporter,
            should_cancel=should_cancel,
            resume=False,
            models_dir=models_dir,
            allow_paths=allow_paths,
            cache=cache,
        )
        value = float(result.metrics_after.get(spec.metric, 0.0))
        trials.append(
            {
                "number": trial.number,
                "params": values,
                "value": value,
                "seconds": time.perf_counter() - began,
                "metrics": dict(result.metrics_after),
            }
        )
        reporter.on_event(f"trial {trial.number}: {spec.metric} {value:.4f} on '{val_split}'")
        return value

    timeout = spec.minutes * 60 if spec.minutes is not None else None
    study.optimize(objective, n_trials=spec.trials, timeout=timeout)
    best = max(trials, key=lambda t: t["value"])
    model_dir = _keep(output_dir, best["number"], [t["number"] for t in trials])
    result = SearchResult(
        params=best["params"],
        value=best["value"],
        metric=spec.metric,
        trials=trials,
        model_dir=model_dir,
        seconds=time.perf_counter() - start,
        default_value=trials[0]["value"] if trials else None,
        metrics=best["metrics"],
    )
    recipe = {**result.to_dict(), "recipe": replace(base, **best["params"]).to_dict()}
    (model_dir / RECIPE_FILE).write_text(json.dumps(recipe, indent=1) + "\n", "utf-8")
    return result


def _keep(output_dir: Path, best: int, numbers: list[int]) -> Path:
    """The best trial's model moved to ``output_dir/model``; the other trials removed."""
    target = output_dir / MODEL
    shutil.rmtree(target, ignore_errors=True)
    shutil.move(str(output_dir / f"trial-{best}"), target)
    for number in numbers:
        shutil.rmtree(output_dir / f"trial-{number}", ignore_errors=True)
    return target

"""Trainer checkpoints shared by every transformers-based fine-tune: resume, best step, metrics."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from transformers import PrinterCallback
from transformers.trainer_utils import get_last_checkpoint

from core.training.hooks import Reporter

CHECKPOINTS = "checkpoints"  # under the output directory; removed once the model is written


def last_checkpoint(ckpt: Path, resume: bool) -> str | None:
    """The checkpoint to resume from (removing them all when not resuming)."""
    if not resume:
        shutil.rmtree(ckpt, ignore_errors=True)
        return None
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None


def train_resuming(trainer: Any, ckpt: Path, resume: bool, reporter: Reporter) -> Any:
    """``trainer.train()``, from the last checkpoint in ``ckpt`` when resuming (said to the
    reporter, which also gets the logs instead of the printer); returns its output."""
    trainer.remove_callback(PrinterCallback)
    last = last_checkpoint(ckpt, resume)
    if last:
        reporter.on_event(f"resuming from {Path(last).name}")
    return trainer.train(resume_from_checkpoint=last)


def best_checkpoint_args(has_eval: bool) -> dict[str, Any]:
    """Trainer arguments that keep two checkpoints and load the best (nDCG@10) at the end."""
    return {
        "save_total_limit": 2,
        "load_best_model_at_end": has_eval,
        "metric_for_best_model": "ndcg@10",
        "greater_is_better": True,
    }


def best_step(checkpoint: str | None) -> int | None:
    return int(checkpoint.rsplit("-", 1)[-1]) if checkpoint else None


def best_metrics(state: Any) -> dict[str, float]:
    """The evaluation metrics logged at the best checkpoint (else the last evaluation)."""
    evals = [entry for entry in state.log_history if "eval_ndcg@10" in entry]
    best = best_step(state.best_model_checkpoint)
    chosen = [e for e in evals if e.get("step") == best] or evals[-1:]
    if not chosen:
        return {}
    return {k.removeprefix("eval_"): v for k, v in chosen[-1].items() if "@" in k}

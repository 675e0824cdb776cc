"""Fine-tuning: full, LoRA and query-adapter methods behind one spec, with progress, cancel
and resume. Importing the spec stays light; ``run_finetune`` loads torch when first used."""

from typing import Any

from core.training.hooks import LogReporter, Reporter
from core.training.spec import FinetuneResult, FinetuneSpec

__all__ = ["FinetuneResult", "FinetuneSpec", "LogReporter", "Reporter", "run_finetune"]


def __getattr__(name: str) -> Any:
    if name == "run_finetune":
        from core.training.finetune import run_finetune

        return run_finetune
    raise AttributeError(name)

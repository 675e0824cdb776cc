"""NUDGE: tune corpus embeddings (not the model) toward the training queries they answer.
Importing the spec stays light; ``run_nudge`` loads the evaluation stack when first used."""

from typing import Any

from core.nudge.spec import NudgeReport, NudgeSpec, Variant

__all__ = ["NudgeReport", "NudgeResult", "NudgeSpec", "Variant", "run_nudge"]


def __getattr__(name: str) -> Any:
    if name in ("run_nudge", "NudgeResult"):
        from core.nudge import tune

        return getattr(tune, name)
    raise AttributeError(name)

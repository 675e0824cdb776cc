"""The trainer callback that feeds a ``Reporter`` and turns a cancel request into a stop."""

from __future__ import annotations

from typing import Any

from transformers import TrainerCallback, TrainerControl, TrainerState, TrainingArguments

from core.training.hooks import CancelCheck, Reporter


class ProgressCallback(TrainerCallback):
    """Feeds the reporter every step (progress) and at logging steps (loss, learning rate);
    stops, saving a checkpoint, on cancel."""

    def __init__(self, reporter: Reporter, should_cancel: CancelCheck | None) -> None:
        self.reporter = reporter
        self.should_cancel = should_cancel
        self.cancelled = False

    def on_step_end(
        self, args: TrainingArguments, state: TrainerState, control: TrainerControl, **_: Any
    ) -> None:
        self.reporter.on_progress("train", state.global_step, state.max_steps)
        if self.should_cancel is not None and self.should_cancel():
            self.cancelled = True
            control.should_training_stop = True
            control.should_save = True  # a rerun resumes from this step

    def on_log(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        logs: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        if logs and "loss" in logs:
            step, total = state.global_step, state.max_steps
            self.reporter.on_step(step, total, float(logs["loss"]), float(logs["learning_rate"]))

    def on_evaluate(
        self,
        args: TrainingArguments,
        state: TrainerState,
        control: TrainerControl,
        metrics: dict[str, float] | None = None,
        **_: Any,
    ) -> None:
        found = {k.removeprefix("eval_"): v for k, v in (metrics or {}).items() if "@" in k}
        self.reporter.on_eval(state.global_step, found)

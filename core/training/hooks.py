"""Progress and cancellation hooks: the ``Reporter`` a fine-tune reports to, its cancel check."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

logger = logging.getLogger(__name__)

CancelCheck = Callable[[], bool]
Teacher = Callable[[list[tuple[str, str]]], list[float]]
"""Teacher scores of (query id, document id) pairs, higher is more relevant (distillation)."""


class Reporter(Protocol):
    """Receives a fine-tune's progress; the worker writes it to the database."""

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None: ...

    def on_progress(self, stage: str, done: int, total: int) -> None:
        """``done`` of ``total`` units of ``stage``: training steps (every step), or the
        documents / queries of an encode before training."""

    def on_eval(self, step: int, metrics: dict[str, float]) -> None: ...

    def on_event(self, message: str) -> None: ...


class LogReporter:
    """A reporter that writes to the module logger (used when none is given)."""

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        logger.info("step %d/%d loss %.4f lr %.2e", step, total, loss, lr)

    def on_progress(self, stage: str, done: int, total: int) -> None:
        logger.debug("%s %d/%d", stage, done, total)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        logger.info("eval at step %d: ndcg@10 %.4f", step, metrics.get("ndcg@10", float("nan")))

    def on_event(self, message: str) -> None:
        logger.info(message)

"""What a running job sees: throttled progress and heartbeats, events, metrics, cancellation."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from core.errors import Cancelled
from core.settings import Settings
from core.store import repos
from core.store.db import transaction
from core.store.tables import utcnow

WRITE_EVERY_S = 1.0  # progress rows are rewritten at most this often (each write is a heartbeat)
CANCEL_CHECK_EVERY_S = 0.5


@dataclass
class JobContext:
    job_id: str
    factory: sessionmaker[Session]
    settings: Settings
    artifacts: Path
    started: float = field(default_factory=time.monotonic)
    _progress: float = 0.0
    _last_write: float = 0.0
    _last_cancel_check: float = 0.0
    _cancelled: bool = False

    def stage(self, name: str, start: float, span: float) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback mapping a stage onto [start, start + span]."""

        def report(done: int, total: int) -> None:
            self.progress(
                start + span * (done / total if total else 1.0), stage=name, step=done, total=total
            )
            self.check_cancel()

        return report

    def progress(
        self,
        fraction: float,
        *,
        stage: str | None = None,
        step: int | None = None,
        total: int | None = None,
        force: bool = False,
    ) -> None:
        """Record progress (never decreasing), the current step and an ETA; throttled."""
        self._progress = max(self._progress, min(fraction, 1.0))
        now = time.monotonic()
        if not force and now - self._last_write < WRITE_EVERY_S:
            return
        self._last_write = now
        elapsed = now - self.started
        eta = elapsed * (1 - self._progress) / self._progress if self._progress > 0.01 else None
        values: dict[str, Any] = {
            "progress": self._progress,
            "eta_seconds": eta,
            "heartbeat_at": utcnow(),
        }
        if stage is not None:
            values["stage"] = stage
        if step is not None:
            values["current_step"] = step
        if total is not None:
            values["total_steps"] = total
        with transaction(self.factory) as session:
            repos.update_job(session, job_id=self.job_id, **values)

    def log(self, message: str, *, level: str = "info", **data: Any) -> None:
        with transaction(self.factory) as session:
            repos.add_event(
                session, job_id=self.job_id, kind="log", message=message, level=level, data=data
            )

    def metrics(self, step: int, values: dict[str, float]) -> None:
        with transaction(self.factory) as session:
            repos.add_metrics(session, job_id=self.job_id, step=step, values=values)

    def should_cancel(self) -> bool:
        """Whether a cancel was requested; reads the database at most every 0.5 s."""
        now = time.monotonic()
        if not self._cancelled and now - self._last_cancel_check >= CANCEL_CHECK_EVERY_S:
            self._last_cancel_check = now
            with self.factory() as session:
                self._cancelled = repos.cancel_requested(session, job_id=self.job_id)
        return self._cancelled

    def check_cancel(self) -> None:
        if self.should_cancel():
            raise Cancelled("the job was cancelled")

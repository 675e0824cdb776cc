"""What a running job sees: throttled progress, events, metrics, and why it must stop.

Every write is fenced by the job's lease token: a worker whose lease was taken back (its
heartbeat went stale and the job was re-queued) finds its writes refused and stops.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from sqlalchemy.orm import Session, sessionmaker

from core.errors import Cancelled
from core.jobs.ports import Enqueue
from core.models.cache import EncodeTally
from core.settings import Settings
from core.store import repos
from core.store.db import transaction
from core.store.tables import utcnow

WRITE_EVERY_S = 1.0  # progress rows are rewritten at most this often
CHECK_EVERY_S = 0.5  # cancel / hand-off / lease flags are read at most this often
StopReason = Literal["cancel", "handoff", "lost"]


class Stop(Cancelled):
    """Raised inside a job that must stop; ``reason`` says why."""

    def __init__(self, reason: StopReason) -> None:
        super().__init__(f"job stopped: {reason}")
        self.reason = reason


@dataclass
class JobContext:
    job_id: str
    factory: sessionmaker[Session]
    settings: Settings
    artifacts: Path
    lease_token: str
    enqueue: Enqueue
    started: float = field(default_factory=time.monotonic)
    stop_reason: StopReason | None = None
    _progress: float = 0.0
    _last_write: float = 0.0
    _last_check: float = 0.0
    _stages: dict[str, tuple[float, int]] = field(default_factory=dict)  # first report of each
    encodes: EncodeTally = field(default_factory=EncodeTally)  # every cache_of(ctx) adds to it

    def stage(self, name: str, start: float, span: float) -> Callable[[int, int], None]:
        """A ``progress(done, total)`` callback mapping a stage onto [start, start + span]
        that also stops the job when it must (``check_stop``)."""

        def report(done: int, total: int) -> None:
            self.step(name, start, span, done, total)
            self.check_stop()

        return report

    def step(self, name: str, start: float, span: float, done: int, total: int) -> None:
        """``done`` of ``total`` units of stage ``name``, mapped onto [start, start + span];
        written at most once a second, and always at the stage's end. The ETA is the stage's
        measured time per unit times the units left, plus the rest of the job at its overall
        pace so far."""
        now = time.monotonic()
        first_at, first_done = self._stages.setdefault(name, (now, done))
        eta = None
        if total and done > first_done:
            per_unit = (now - first_at) / (done - first_done)
            eta = per_unit * (total - done) + self._pace_eta(start + span, now)
        fraction = start + span * (done / total if total else 1.0)
        # A stage's last step is always written, so an ended stage never shows as unfinished.
        force = done >= total
        self.progress(fraction, stage=name, step=done, total=total, eta=eta, force=force)

    def _pace_eta(self, fraction: float, now: float) -> float:
        """Seconds for the share of the job after ``fraction``, at the pace so far."""
        if self._progress <= 0.01:
            return 0.0
        return (now - self.started) * max(1.0 - fraction, 0.0) / self._progress

    def progress(
        self,
        fraction: float,
        *,
        stage: str | None = None,
        step: int | None = None,
        total: int | None = None,
        eta: float | None = None,
        force: bool = False,
    ) -> None:
        """Record progress (never decreasing), the current step and an ETA (``eta``, else
        from the overall pace); throttled to one write per ``WRITE_EVERY_S``."""
        self._progress = max(self._progress, min(fraction, 1.0))
        now = time.monotonic()
        if not force and now - self._last_write < WRITE_EVERY_S:
            return
        self._last_write = now
        if eta is None and self._progress > 0.01:
            eta = self._pace_eta(self._progress, now)
        values: dict[str, Any] = {
            "progress": self._progress,
            "eta_seconds": eta,
            "heartbeat_at": utcnow(),
        }
        values.update(
            {
                k: v
                for k, v in (("stage", stage), ("current_step", step), ("total_steps", total))
                if v is not None
            }
        )
        with transaction(self.factory) as session:
            if not repos.update_leased(
                session, job_id=self.job_id, token=self.lease_token, **values
            ):
                self.stop_reason = "lost"

    def log(self, message: str, *, level: str = "info", **data: Any) -> None:
        if self.stop_reason != "lost":
            with transaction(self.factory) as session:
                repos.add_event(
                    session, job_id=self.job_id, kind="log", message=message, level=level, data=data
                )

    def metrics(self, step: int, values: dict[str, float]) -> None:
        if self.stop_reason != "lost":
            with transaction(self.factory) as session:
                repos.add_metrics(session, job_id=self.job_id, step=step, values=values)

    def should_cancel(self) -> bool:
        """Whether the job must stop (cancelled, handed back, or lease lost); reads the
        database at most every 0.5 s. Fine-tuning polls this between steps."""
        now = time.monotonic()
        if self.stop_reason is None and now - self._last_check >= CHECK_EVERY_S:
            self._last_check = now
            with self.factory() as session:
                flags = repos.job_flags(session, job_id=self.job_id)
            if flags is None or flags.lease_token != self.lease_token:
                self.stop_reason = "lost"
            elif flags.cancel_requested:
                self.stop_reason = "cancel"
            elif flags.handoff_requested:
                self.stop_reason = "handoff"
        return self.stop_reason is not None

    def check_stop(self) -> None:
        if self.should_cancel():
            raise Stop(self.stop_reason or "cancel")

"""A background thread that runs the reconciler every few seconds (started by the API)."""

from __future__ import annotations

import logging
import threading

from celery import Celery
from sqlalchemy.orm import Session, sessionmaker

from core.jobs.reconcile import reconcile
from core.jobs.service import Enqueue
from core.settings import Settings
from workers.broker import broker_job_ids

log = logging.getLogger(__name__)


class Reconciler:
    def __init__(
        self, factory: sessionmaker[Session], settings: Settings, celery: Celery, enqueue: Enqueue
    ) -> None:
        self.factory, self.settings, self.celery, self.enqueue = factory, settings, celery, enqueue
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="reconciler")

    def start(self) -> None:
        if self.settings.reconcile_seconds > 0:
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def run_once(self) -> None:
        done = reconcile(
            self.factory,
            self.settings,
            enqueue=self.enqueue,
            broker_job_ids=lambda: broker_job_ids(self.celery, self.settings),
        )
        for name, ids in vars(done).items():
            if ids:
                log.warning(
                    "reconciler %s: %s", name, ids if isinstance(ids, int) else ", ".join(ids)
                )

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # the database or broker is down: try again next round
                log.warning("reconciler pass failed", exc_info=True)
            if self._stop.wait(self.settings.reconcile_seconds):
                return

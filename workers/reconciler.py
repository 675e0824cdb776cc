"""The reconciler process (``embedtune reconciler``): one per deployment, every few seconds.

Two started by mistake never run at once: each holds a lock while it works, a Postgres
advisory lock (taken on a connection kept for the purpose) or, on SQLite, a file lock in the
data directory; the other waits as a standby and takes over if the first one dies.
"""

from __future__ import annotations

import logging
import threading

from core.bootstrap import Platform
from core.jobs.reconcile import reconcile
from core.store.locks import single_instance
from workers.broker import broker_job_ids

log = logging.getLogger(__name__)
LOCK_KEY = 0x656D6265  # "embe": the advisory lock id of the reconciler


def run_once(platform: Platform) -> None:
    done = reconcile(
        platform.factory,
        platform.settings,
        enqueue=platform.enqueue,
        broker_job_ids=lambda: broker_job_ids(platform.celery, platform.settings),
    )
    for name, ids in vars(done).items():
        if ids:
            log.warning("reconciler %s: %s", name, ids if isinstance(ids, int) else ", ".join(ids))


def run_forever(platform: Platform, stop: threading.Event) -> None:
    """Reconcile every ``reconcile_seconds`` while holding the lock, until ``stop`` is set."""
    every = max(platform.settings.reconcile_seconds, 0.5)
    while not stop.is_set():
        try:
            lock_file = platform.settings.data_dir / "reconciler.lock"
            with single_instance(platform.db, key=LOCK_KEY, lock_file=lock_file) as holds:
                while holds() and not stop.is_set():
                    try:
                        run_once(platform)
                    except Exception:  # the database or broker is down: try again next round
                        log.warning("reconciler pass failed", exc_info=True)
                    stop.wait(every)
        except Exception:  # the lock's connection went away: look for the lock again
            log.warning("reconciler lost its lock", exc_info=True)
        stop.wait(every)  # a standby: look for the lock again

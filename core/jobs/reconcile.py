"""Take back what faults left behind; Postgres is the source of truth, the broker is not.

- A running job whose heartbeat is older than the lease went with its worker: it is queued
  again (its lease token cleared, so the old worker's writes are refused), or failed as
  worker_lost once it used up its attempts.
- A queued job the broker no longer holds (Redis restarted, a crash between commit and
  enqueue) is enqueued again, unless it still waits for another job; so is a job whose
  dependencies all ended but which was never enqueued.
- Expired Idempotency-Key records are deleted, and staged uploads of requests that died
  (untouched for ``upload_stale_seconds``) are removed.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from core.jobs import lifecycle
from core.jobs.ports import Enqueue
from core.jobs.registry import queue_of
from core.services.idempotency import expiry
from core.settings import Settings
from core.store import repos
from core.store.db import transaction
from core.store.tables import as_utc, utcnow

ENQUEUE_GRACE_S = 10.0  # a job committed this recently may not have reached the broker yet
BrokerJobIds = Callable[[], set[str] | None]
"""Ids of the jobs the broker holds (waiting or delivered); None when it cannot tell."""


@dataclass(frozen=True)
class Reconciled:
    requeued_stale: list[str]
    failed_stale: list[str]
    reenqueued_lost: list[str]
    removed_uploads: list[str] = field(default_factory=list)
    expired_keys: int = 0


def reconcile(
    factory: sessionmaker[Session],
    settings: Settings,
    *,
    enqueue: Enqueue,
    broker_job_ids: BrokerJobIds,
) -> Reconciled:
    now = utcnow()
    requeued, failed, lost, released = [], [], [], []
    with transaction(factory) as session:
        for job in repos.stale_running(
            session, before=now - timedelta(seconds=settings.lease_seconds)
        ):
            age = (now - as_utc(job.heartbeat_at)).total_seconds()
            if job.attempts >= settings.job_max_attempts:
                released += lifecycle.end(
                    session,
                    job,
                    "failed",
                    code="worker_lost",
                    message=f"its worker stopped answering ({age:.0f}s without a "
                    f"heartbeat) on the last of {job.attempts} attempts",
                )
                failed.append(job.id)
                continue
            job.status, job.lease_token, job.enqueued_at = "queued", None, now
            repos.add_event(
                session,
                job_id=job.id,
                kind="state",
                message="queued",
                data={"reason": f"worker stopped answering ({age:.0f}s)"},
            )
            requeued.append((job.id, job.type))
    held = broker_job_ids()
    if held is not None:
        grace = now - timedelta(seconds=ENQUEUE_GRACE_S)
        with transaction(factory) as session:
            for job in repos.queued_before(session, before=grace):
                if job.id not in held and job.id not in {j for j, _ in requeued}:
                    job.enqueued_at = now
                    repos.add_event(
                        session,
                        job_id=job.id,
                        kind="log",
                        level="warning",
                        message="re-enqueued: the broker no longer held it",
                    )
                    lost.append((job.id, job.type))
    for job_id, job_type in requeued + lost + [(j.id, j.type) for j in released]:
        enqueue(job_id, queue_of(job_type))
    with transaction(factory) as session:
        cutoffs = expiry(settings.idempotency_pending_seconds, settings.idempotency_ttl_seconds)
        expired = repos.purge_idempotency(session, **cutoffs)
    uploads = remove_stale_uploads(settings.data_dir / "uploads", settings.upload_stale_seconds)
    return Reconciled([j for j, _ in requeued], failed, [j for j, _ in lost], uploads, expired)


def remove_stale_uploads(root: Path, stale_seconds: float) -> list[str]:
    """Remove staging folders in which nothing changed for ``stale_seconds``; their names."""
    if not root.is_dir():
        return []
    cutoff = time.time() - stale_seconds
    removed = []
    for folder in root.iterdir():
        entries = [folder, *folder.rglob("*")] if folder.is_dir() else [folder]
        try:
            newest = max(entry.lstat().st_mtime for entry in entries)
        except FileNotFoundError:  # its request finished while we looked
            continue
        if newest < cutoff:
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
            else:
                folder.unlink(missing_ok=True)
            removed.append(folder.name)
    return removed

"""The reconciler runs in exactly one process per deployment: a second one is a standby."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from core.bootstrap import bootstrap
from core.settings import Settings
from core.store.db import transaction
from core.store.locks import single_instance
from core.store.tables import DatasetRow, JobRow, utcnow
from tests.e2e.conftest import start_reconciler
from workers.reconciler import LOCK_KEY


def test_a_second_reconciler_waits_until_the_first_lets_go(backend: Settings) -> None:
    first, second = bootstrap(backend), bootstrap(backend)
    try:
        lock_file = backend.data_dir / "reconciler.lock"
        with single_instance(first.db, key=LOCK_KEY, lock_file=lock_file) as first_holds:
            assert first_holds()
            with single_instance(second.db, key=LOCK_KEY, lock_file=lock_file) as second_holds:
                assert not second_holds()
        with single_instance(second.db, key=LOCK_KEY, lock_file=lock_file) as second_holds:
            assert second_holds()
    finally:
        first.close()
        second.close()


def test_the_reconciler_process_takes_back_a_lost_job(settings: Settings, tmp_path: Path) -> None:
    """A queued job the broker never got is enqueued by the ``embedtune reconciler`` process."""
    quick = settings.model_copy(update={"reconcile_seconds": 0.5})
    platform = bootstrap(quick)
    with transaction(platform.factory) as session:
        session.add(
            DatasetRow(
                id="ds_x", name="x", format="beir", stats={}, path="-", checksum="-", size_bytes=0
            )
        )
        session.flush()
        session.add(
            JobRow(
                id="job_lost",
                type="eval",
                spec={"dataset_id": "ds_x", "model": "m"},
                dataset_id="ds_x",
                enqueued_at=utcnow() - timedelta(minutes=5),
            )
        )
    log = tmp_path / "reconciler.log"
    process = start_reconciler(quick, log)
    try:
        deadline = time.monotonic() + 60
        while b"reenqueued_lost: job_lost" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0
        platform.close()

"""One holder at a time: a Postgres advisory lock, or a file lock next to a SQLite store."""

from __future__ import annotations

import fcntl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

HELD = text(
    "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = :k "
    "AND pid = pg_backend_pid() AND granted"
)


@contextmanager
def single_instance(engine: Engine, *, key: int, lock_file: Path) -> Iterator[Callable[[], bool]]:
    """``holds()``: whether this process (still) holds lock ``key``. On Postgres the lock
    lives on a connection kept open for the block (it is gone if that connection is); on
    SQLite, one machine, ``lock_file`` is locked instead."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            held = bool(conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}))
            try:
                yield lambda: held and conn.scalar(HELD, {"k": key}) is not None
            finally:
                if held:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
        return
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield lambda: False
            return
        try:
            yield lambda: True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)

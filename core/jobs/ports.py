"""What the job use cases need from outside, wired by ``core.bootstrap``."""

from __future__ import annotations

from collections.abc import Callable

Enqueue = Callable[[str, str], None]
"""``enqueue(job_id, queue)``: hands the job to the broker."""

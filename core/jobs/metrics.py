"""The job table as Prometheus metrics, read at each scrape: jobs by type and state, and the
depth of each queue (jobs queued for it, waiting for a worker or for the jobs they need)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session, sessionmaker

from core.jobs.registry import KINDS, JobStatus, queue_of
from core.store import repos

STATES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")


class JobTableCollector(Collector):
    """Counts from the database, so that they hold across API replicas and restarts."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self.factory = factory

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.factory() as session:
            counts = repos.job_counts(session)
        jobs = GaugeMetricFamily(
            "embedtune_jobs", "Jobs by type and state.", labels=["type", "state"]
        )
        seen = {(t, s): n for t, s, n in counts}
        for job_type in KINDS:
            for state in STATES:
                jobs.add_metric([job_type, state], seen.get((job_type, state), 0))
        depth = GaugeMetricFamily(
            "embedtune_queue_depth", "Jobs queued, by the queue they run on.", labels=["queue"]
        )
        queued: dict[str, int] = {queue_of(t): 0 for t in KINDS}
        for job_type, state, n in counts:
            if state == "queued" and job_type in KINDS:
                queued[queue_of(job_type)] += n
        for queue, n in sorted(queued.items()):
            depth.add_metric([queue], n)
        yield jobs
        yield depth

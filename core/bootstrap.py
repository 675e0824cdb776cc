"""The composition root: what a process of EmbedTune is made of, built in one place.

The API (``api.main.create_app``), the workers (``workers.app``), the reconciler and the CLI
each call :func:`bootstrap` once; nothing reads settings at import time. This is the one
module of ``core`` that knows the broker library: it configures the Celery app that sends
jobs (the API, the reconciler) and runs them (the workers), so both sides always agree on
the broker, its key prefix and the queues.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from celery import Celery
from kombu import Queue
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from core.serving.engine import Engine as ServingEngine
from core.settings import Settings, get_settings
from core.store.db import make_engine, make_session_factory

RUN_JOB = "embedtune.jobs.run"
HARD_TIME_LIMIT_S = 24 * 3600
SOFT_TIME_LIMIT_S = HARD_TIME_LIMIT_S - 120  # the job records time_limit; no checkpoint is due


@dataclass
class Platform:
    """Settings, the database, the broker port and (built on first use) the serving engine."""

    settings: Settings
    db: Engine
    factory: sessionmaker[Session]
    celery: Celery

    def enqueue(self, job_id: str, queue: str) -> None:
        """Hand job ``job_id`` to the broker (the ``Enqueue`` port of ``core.jobs``)."""
        self.celery.send_task(RUN_JOB, args=[job_id], queue=queue)

    def broker_ping(self) -> None:
        with self.celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    @cached_property
    def serving(self) -> ServingEngine:
        from core.services.serving import build_engine

        return build_engine(self.settings, self.factory)

    def close(self) -> None:
        if "serving" in self.__dict__:
            self.serving.close()
        self.db.dispose()


def bootstrap(settings: Settings | None = None) -> Platform:
    settings = settings or get_settings()
    db = make_engine(settings.db_url)
    return Platform(settings, db, make_session_factory(db), celery_app(settings))


def celery_app(settings: Settings) -> Celery:
    """The Celery app: broker settings chosen for long, expensive, restartable jobs."""
    app = Celery("embedtune", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        # Acknowledge after the job ran, not when it starts: a worker that dies mid-job leaves
        # the message to be delivered again (the job resumes from its checkpoint) ...
        task_acks_late=True,
        # ... including when the worker process is killed (OOM, kill -9); the job row counts
        # deliveries and fails the job as worker_lost after settings.job_max_attempts.
        task_reject_on_worker_lost=True,
        # One job at a time per worker process: a prefetched job would wait behind an
        # hour-long fine-tune while another worker idles.
        worker_prefetch_multiplier=1,
        # The soft limit raises inside the job two minutes before the hard kill: time to
        # record the failure (code time_limit). Nothing is checkpointed then.
        task_time_limit=HARD_TIME_LIMIT_S,
        task_soft_time_limit=SOFT_TIME_LIMIT_S,
        broker_transport_options=_transport(settings),
        # JSON only: a message can never carry a pickle. Tasks receive a job id, nothing else.
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        task_ignore_result=True,
        # GPU work (fine-tuning) and CPU work (eval, index, mining) scale separately.
        task_queues=(Queue("cpu"), Queue("gpu")),
        task_default_queue="cpu",
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
    )
    return app


def _transport(settings: Settings) -> dict[str, object]:
    transport: dict[str, object] = {
        # A message not acknowledged within this window is delivered again. It must exceed the
        # hard time limit, or a job still running would be handed to a second worker.
        "visibility_timeout": HARD_TIME_LIMIT_S + 3600,
    }
    if settings.broker_prefix:
        transport["global_keyprefix"] = settings.broker_prefix
    if settings.celery_broker_url.startswith("filesystem"):
        folder = settings.broker_dir.resolve()
        for sub in ("queue", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport.update(
            data_folder_in=str(folder / "queue"),
            data_folder_out=str(folder / "queue"),
            processed_folder=str(folder / "processed"),
            control_folder=str(folder / "control"),
            store_processed=False,
        )
    return transport

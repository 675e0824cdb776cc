"""The Celery application: broker settings chosen for long, expensive, restartable jobs."""

from __future__ import annotations

from celery import Celery
from kombu import Queue

from core.settings import Settings, get_settings

HARD_TIME_LIMIT_S = 24 * 3600
SOFT_TIME_LIMIT_S = HARD_TIME_LIMIT_S - 600
RUN_JOB = "embedtune.jobs.run"


def create_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("embedtune", broker=settings.celery_broker_url)
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
        # The soft limit raises inside the job ten minutes before the hard kill, leaving time
        # to write a checkpoint and record the failure.
        task_time_limit=HARD_TIME_LIMIT_S,
        task_soft_time_limit=SOFT_TIME_LIMIT_S,
        broker_transport_options=transport,
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

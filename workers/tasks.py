"""Task adapters: receive a job id, run the core use case, nothing else."""

from __future__ import annotations

import socket

from celery.exceptions import SoftTimeLimitExceeded

from core.jobs.runner import run_job
from workers.app import RUN_JOB, create_celery
from workers.runtime import runtime

celery = create_celery()


@celery.task(name=RUN_JOB, bind=True)
def run(self, job_id: str) -> str:
    rt = runtime()
    return run_job(
        job_id,
        factory=rt.factory,
        settings=rt.settings,
        worker=f"{socket.gethostname()}:{self.request.hostname}",
        time_limit_errors=(SoftTimeLimitExceeded,),
    )

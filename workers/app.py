"""The worker side of the Celery app: ``python -m workers worker -Q cpu,gpu ...``."""

from __future__ import annotations

from celery import Celery

from core.settings import Settings
from workers import tasks


def create_celery(settings: Settings | None = None) -> Celery:
    """The Celery app of ``core.bootstrap`` with the job task registered on it."""
    app = tasks.platform(settings).celery
    tasks.register(app)
    return app

"""Application factory: wires settings, the database, the broker and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import datasets, health, jobs, models
from core.settings import Settings, get_settings
from core.store.db import make_engine, make_session_factory


def create_app(settings: Settings | None = None) -> FastAPI:
    from workers.app import RUN_JOB, create_celery
    from workers.reconciler import Reconciler

    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconciler.start()  # re-enqueues jobs that faults left behind
        yield
        reconciler.stop()

    app = FastAPI(
        lifespan=lifespan,
        title="EmbedTune",
        version="0.1.0",
        description="Fine-tune retrieval embedding models on your data, "
        "prove it with numbers, serve them.",
    )
    celery = create_celery(settings)
    app.state.settings = settings
    app.state.factory = make_session_factory(make_engine(settings.db_url))
    app.state.enqueue = lambda job_id, queue: celery.send_task(RUN_JOB, args=[job_id], queue=queue)

    def broker_ping() -> None:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    app.state.broker_ping = broker_ping
    reconciler = Reconciler(app.state.factory, settings, celery, app.state.enqueue)
    install_error_handlers(app)
    for module in (health, datasets, jobs, models):
        app.include_router(module.router)
    return app

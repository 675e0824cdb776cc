"""Application factory: wires settings, the database, the broker and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.routes import datasets, embeddings, health, indexes, jobs, models, projects, reports
from api.security import KeyCache, RateLimiter, require
from core.serving.catalog import ModelOwners, build_engine
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
        app.state.engine.close()

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
    app.state.engine = build_engine(settings, app.state.factory)
    app.state.model_owners = ModelOwners(app.state.factory)
    app.state.enqueue = lambda job_id, queue: celery.send_task(RUN_JOB, args=[job_id], queue=queue)

    def broker_ping() -> None:
        with celery.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)

    app.state.broker_ping = broker_ping
    reconciler = Reconciler(app.state.factory, settings, celery, app.state.enqueue)
    failures = RateLimiter(
        settings.auth_failures_per_minute,
        settings.auth_failures_burst,
        what="too many failed API-key attempts from this address",
    )
    app.state.keys = KeyCache(app.state.factory, settings.auth_cache_seconds, failures)
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    install_error_handlers(app)
    app.add_middleware(
        BodyLimit, upload_bytes=settings.max_upload_bytes, other_bytes=settings.max_request_bytes
    )
    app.include_router(health.router)  # open: probes send no key
    for module in (models, embeddings, indexes):
        app.include_router(module.router, dependencies=[Depends(require("inference"))])
    for module in (datasets, jobs, reports):  # inference-only keys may not read data or jobs
        app.include_router(module.router, dependencies=[Depends(require("user"))])
    app.include_router(projects.router, dependencies=[Depends(require("admin"))])
    return app

"""Application factory: wires settings, the database, the broker and the routes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from prometheus_client import CollectorRegistry

from api.errors import install_error_handlers
from api.limits import BodyLimit
from api.metrics import HttpMetrics
from api.metrics import router as metrics_router
from api.routes import (
    aliases,
    datasets,
    documents,
    embeddings,
    health,
    indexes,
    jobs,
    models,
    projects,
    reports,
    rerank,
    ui,
)
from api.security import KeyCache, RateLimiter, require
from core.bootstrap import bootstrap
from core.jobs.metrics import JobTableCollector
from core.services.aliases import AliasResolver
from core.services.serving import ModelOwners
from core.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    """The API of one platform (``core.bootstrap``). It sends jobs to the broker; the
    reconciler runs as its own process (``embedtune reconciler``), never in an API replica."""
    platform = bootstrap(settings)
    settings = platform.settings

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        platform.close()

    app = FastAPI(
        lifespan=lifespan,
        title="EmbedTune",
        version="0.1.0",
        description="Fine-tune retrieval embedding models on your data, "
        "prove it with numbers, serve them.",
    )
    app.state.settings = settings
    app.state.factory = platform.factory
    app.state.engine = platform.serving
    app.state.model_owners = ModelOwners(platform.factory)
    app.state.aliases = AliasResolver(platform.factory, settings.alias_cache_seconds)
    app.state.enqueue = platform.enqueue
    app.state.broker_ping = platform.broker_ping
    app.state.job_metrics = CollectorRegistry()
    app.state.job_metrics.register(JobTableCollector(platform.factory))
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
    app.add_middleware(HttpMetrics)
    app.include_router(health.router)  # open: probes send no key
    app.include_router(metrics_router)  # its own access rule (EMBEDTUNE_METRICS_ACCESS)
    for module in (models, embeddings, rerank, indexes, aliases):
        app.include_router(module.router, dependencies=[Depends(require("inference"))])
    for module in (datasets, documents, jobs, reports):  # inference keys: no data, no jobs
        app.include_router(module.router, dependencies=[Depends(require("user"))])
    app.include_router(projects.router, dependencies=[Depends(require("admin"))])
    ui.mount(app)  # the dashboard: static files, which call the routes above with a key
    return app

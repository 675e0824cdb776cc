"""HTTP metrics: a counter and a latency histogram per route template, and ``GET /metrics``
(who may read it: ``EMBEDTUNE_METRICS_ACCESS``, see docs/observability.md)."""

from __future__ import annotations

import ipaddress
import time

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.security import require
from core import metrics

router = APIRouter(tags=["health"])
OTHER = "other"  # requests that match no route share one label


class HttpMetrics:
    """Counts every HTTP request by route template (``/v1/jobs/{job_id}``), method and
    status, and times it; the template, not the path, so that ids never become labels."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _template(scope)
            metrics.HTTP_REQUESTS.labels(route, scope["method"], str(status)).inc()
            metrics.HTTP_SECONDS.labels(route).observe(time.perf_counter() - started)


def _template(scope: Scope) -> str:
    """The template of the route that answered (the router records it in the scope)."""
    return getattr(scope.get("route"), "path", None) or OTHER


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(request: Request) -> Response:
    """This API process's metrics and the job table's counts, in Prometheus' text format."""
    if not _open_to(request):
        await require("inference")(request)
    body = await run_in_threadpool(_exposition, request)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def _exposition(request: Request) -> bytes:
    return generate_latest(REGISTRY) + generate_latest(request.app.state.job_metrics)


def _open_to(request: Request) -> bool:
    access = request.app.state.settings.metrics_access
    if access == "open":
        return True
    if access == "key" or request.client is None:
        return False
    try:
        return ipaddress.ip_address(request.client.host).is_loopback
    except ValueError:  # not an address (a test client, a Unix socket)
        return False

"""Liveness and readiness."""

from __future__ import annotations

import tempfile

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from core.store import repos

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Database, broker and storage reachable (503 naming what is not); needs no key, like
    ``/healthz``, since probes send none, and says only which dependency failed and how."""
    state = request.app.state
    checks = {
        "database": _check(lambda: _db(state.factory)),
        "broker": _check(state.broker_ping),
        "storage": _check(lambda: _storage(state.settings.data_dir)),
    }
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks}, 200 if ready else 503
    )


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:
        return f"error: {type(exc).__name__}"
    return "ok"


def _db(factory) -> None:
    with factory() as session:
        repos.ping(session)


def _storage(data_dir) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=data_dir):
        pass

"""One table from domain errors to HTTP statuses; OpenAI-style error bodies."""

from __future__ import annotations

import logging
import math
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import exc as db
from starlette.exceptions import HTTPException

from core.errors import (
    Cancelled,
    Conflict,
    CoreError,
    InvalidInput,
    NotFound,
    Overloaded,
    TooLarge,
    Transient,
)
from core.services.keys import Forbidden, Unauthorized

log = logging.getLogger("embedtune.api")

# The database went away or refused a connection: a retry may succeed, so 503, not 500.
DATABASE_DOWN = (db.OperationalError, db.InterfaceError, db.TimeoutError)

STATUS_OF: tuple[tuple[type[CoreError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (NotFound, 404),
    (Conflict, 409),
    (Cancelled, 409),
    (TooLarge, 413),
    (InvalidInput, 422),
    (Overloaded, 429),
    (Transient, 503),
)
TYPE_OF = {
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
}


def error_body(code: str, message: str, param: str | None, status: int, **extra: object) -> dict:
    kind = TYPE_OF.get(status, "invalid_request_error" if status < 500 else "server_error")
    message, param = _printable(message), _printable(param)
    return {"error": {"code": code, "message": message, "param": param, "type": kind, **extra}}


def _printable(text: str | None) -> str | None:
    """``text`` with what UTF-8 cannot carry (lone surrogates echoed from a request) escaped."""
    return text.encode("utf-8", "backslashreplace").decode() if text is not None else None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CoreError)
    async def core_error(_: Request, exc: CoreError) -> JSONResponse:
        status = next((s for cls, s in STATUS_OF if isinstance(exc, cls)), 400)
        extra = exc.details()
        headers = None
        if isinstance(exc, Overloaded):
            headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after)))}
        elif isinstance(exc, Unauthorized):
            headers = {"WWW-Authenticate": "Bearer"}
        return JSONResponse(
            error_body(exc.code, exc.message, exc.param, status, **extra), status, headers=headers
        )

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning("database unavailable on %s: %s", request.url.path, type(exc).__name__)
        message = "the database is unavailable; retry shortly"
        return await core_error(request, Transient(message, code="unavailable"))

    for cls in DATABASE_DOWN:
        app.add_exception_handler(cls, database_down)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        raw = list(first.get("loc", ()))
        body = exc.body if isinstance(exc.body, dict) else {}
        if len(raw) > 1 and raw[0] == "body" and raw[1] == body.get("type"):
            del raw[1]  # the tag of a discriminated union (the job type) is not a field
        if raw and raw[0] in ("body", "query", "path", "header"):
            raw = raw[1:]  # where it was sent; a body field may itself be named "query"
        loc = [str(p) for p in raw]
        message = f"{'.'.join(loc) or 'request'}: {first.get('msg', 'invalid request')}"
        return JSONResponse(error_body("invalid_request", message, ".".join(loc) or None, 422), 422)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(
            error_body(code, str(exc.detail), None, exc.status_code),
            exc.status_code,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        request_id = uuid.uuid4().hex
        log.exception("unhandled error %s on %s %s", request_id, request.method, request.url.path)
        return JSONResponse(
            error_body("internal_error", f"internal error (request id {request_id})", None, 500),
            500,
        )

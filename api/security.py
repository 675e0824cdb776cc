"""Who is calling: API-key authentication, roles per route, and a per-key rate limit."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request

from api.deps import SessionDep
from core.auth import Principal, Role, authenticate
from core.errors import Overloaded


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests on average, bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: int) -> None:
        self.rate, self.burst = per_minute / 60.0, burst
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (float(self.burst), now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
                raise Overloaded(
                    f"rate limit reached; retry in {wait:.1f}s",
                    code="rate_limited",
                    param="api_key",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1, now)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def require(role: Role) -> Callable[..., Principal]:
    """A dependency admitting keys of ``role`` or above (401 without a valid key, 403 below
    the role, 429 past the key's rate)."""

    def dependency(request: Request, session: SessionDep) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # once per request, however many routes/routers ask
            principal = authenticate(session, presented_key(request))
            request.app.state.rate_limiter.check(principal.key_id)
            request.state.principal = principal
        principal.require(role)
        return principal

    return dependency


Inference = Annotated[Principal, Depends(require("inference"))]
User = Annotated[Principal, Depends(require("user"))]

"""Who is calling: API-key authentication, roles per route, per-key and per-address limits."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from core.errors import Overloaded
from core.services.keys import Principal, Role, Unauthorized, authenticate


class RateLimiter:
    """A token bucket per key: ``per_minute`` requests on average, bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: int, *, what: str = "rate limit reached") -> None:
        self.rate, self.burst, self.what = per_minute / 60.0, burst, what
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, key: str) -> None:
        """Take one request from ``key``'s bucket; ``Overloaded`` (429) when it is empty."""
        self._take(key, spend=True)

    def admit(self, key: str) -> None:
        """``Overloaded`` when ``key``'s bucket is empty; takes nothing from it."""
        self._take(key, spend=False)

    def spend(self, key: str) -> None:
        """Take one from ``key``'s bucket, which may run empty (a failed attempt)."""
        with self._lock:
            tokens = self._tokens(key, now := time.monotonic())
            self._buckets[key] = (max(tokens - 1, 0.0), now)

    def _take(self, key: str, *, spend: bool) -> None:
        now = time.monotonic()
        with self._lock:
            tokens = self._tokens(key, now)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                wait = (1 - tokens) / self.rate
                raise Overloaded(
                    f"{self.what}; retry in {wait:.1f}s",
                    code="rate_limited",
                    param="api_key",
                    retry_after=wait,
                )
            self._buckets[key] = (tokens - 1 if spend else tokens, now)

    def _tokens(self, key: str, now: float) -> float:
        if len(self._buckets) > 65536:  # many clients: forget the buckets that refilled
            self._buckets = {
                k: (t, last)
                for k, (t, last) in self._buckets.items()
                if t + (now - last) * self.rate < self.burst
            }
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        return min(self.burst, tokens + (now - last) * self.rate)


class KeyCache:
    """Principals of recently accepted keys, trusted for ``ttl`` seconds, so that a busy
    embedding client costs no database round trip (nor thread hop) per request. A key
    revoked elsewhere (``embedtune keys revoke``) stops working within ``ttl``; 0 disables.
    Refused keys are never cached: each is checked against the database again, unless its
    client address spent its ``failures`` budget, which answers 429 without a lookup."""

    def __init__(self, factory: sessionmaker[Session], ttl: float, failures: RateLimiter) -> None:
        self.factory, self.ttl, self.failures = factory, ttl, failures
        self._accepted: dict[bytes, tuple[Principal, float]] = {}

    async def principal(self, presented: str | None, address: str) -> Principal:
        digest = hashlib.sha256((presented or "").encode()).digest()
        now = time.monotonic()
        cached = self._accepted.get(digest)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        self.failures.admit(address)
        try:
            principal = await run_in_threadpool(self._lookup, presented)
        except Unauthorized:
            self.failures.spend(address)
            raise
        if self.ttl > 0:
            self._accepted[digest] = (principal, now)
        return principal

    def forget(self, key_id: str) -> None:
        """Drop the cached principal of ``key_id`` (just revoked here)."""
        self._accepted = {d: e for d, e in self._accepted.items() if e[0].key_id != key_id}

    def _lookup(self, presented: str | None) -> Principal:
        with self.factory() as session:
            return authenticate(session, presented)


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


def require(role: Role) -> Callable[..., Principal]:
    """A dependency admitting keys of ``role`` or above (401 without a valid key, 403 below
    the role, 429 past the key's rate or past the address's failed attempts)."""

    async def dependency(request: Request) -> Principal:  # async: no thread hop when cached
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:  # once per request, however many routes/routers ask
            address = request.client.host if request.client else ""
            principal = await request.app.state.keys.principal(presented_key(request), address)
            request.app.state.rate_limiter.check(principal.key_id)
            request.state.principal = principal
        principal.require(role)
        return principal

    return dependency


Inference = Annotated[Principal, Depends(require("inference"))]
User = Annotated[Principal, Depends(require("user"))]

"""``Idempotency-Key``: a retried POST gets the first response; a reused key with another
body is a 409. A key is reserved before the work starts, so two racing requests cannot both
do it. A reservation whose request never answered (its process died) can be taken over after
``pending_seconds``; an answered key is forgotten after ``ttl_seconds`` (the reconciler
deletes it, and a request finding it first takes it over)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import Conflict, InvalidInput
from core.store import repos
from core.store.db import transaction
from core.store.tables import utcnow


@dataclass(frozen=True)
class Stored:
    """The first answer to a request with this key, to be given again."""

    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


def expiry(pending_seconds: float, ttl_seconds: float) -> dict[str, datetime]:
    """The cut-offs of ``repos.reclaim_idempotency`` / ``purge_idempotency`` as of now."""
    now = utcnow()
    return {
        "pending_before": now - timedelta(seconds=pending_seconds),
        "answered_before": now - timedelta(seconds=ttl_seconds),
    }


def body_hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Idempotency:
    factory: sessionmaker[Session]
    owner: str
    key: str | None
    request_hash: str
    pending_seconds: float = 600.0
    ttl_seconds: float = 86400.0

    def replay(self) -> Stored | None:
        """The stored response of an earlier request with this key, or None after reserving
        the key for this one."""
        if self.key is None:
            return None
        if len(self.key) > 200:
            raise InvalidInput(
                "Idempotency-Key is longer than 200 characters",
                code="invalid_idempotency_key",
                param="Idempotency-Key",
            )
        try:
            with transaction(self.factory) as session:
                repos.reserve_idempotency(
                    session, owner=self.owner, key=self.key, request_hash=self.request_hash
                )
            return None
        except IntegrityError:
            pass
        with transaction(self.factory) as session:
            if repos.reclaim_idempotency(
                session,
                owner=self.owner,
                key=self.key,
                request_hash=self.request_hash,
                **expiry(self.pending_seconds, self.ttl_seconds),
            ):
                return None
        with self.factory() as session:
            row = repos.find_idempotency(session, owner=self.owner, key=self.key)
        if row is None or row.request_hash != self.request_hash:
            raise Conflict(
                "this Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
                param="Idempotency-Key",
            )
        if row.status_code == repos.PENDING:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress",
                code="idempotency_key_in_progress",
                param="Idempotency-Key",
            )
        return Stored(row.status_code, row.response, row.headers)

    def remember(self, status_code: int, body: dict[str, Any], headers: dict[str, str]) -> None:
        """Keep the answer (``body`` as JSON) for the retries of this request."""
        if self.key is None:
            return
        with transaction(self.factory) as session:
            row = repos.find_idempotency(session, owner=self.owner, key=self.key)
            if row is not None:
                row.status_code, row.response = status_code, body
                row.headers = headers

    def release(self) -> None:
        """Forget the reservation of a request that failed, so that it may be retried."""
        if self.key is None:
            return
        with transaction(self.factory) as session:
            repos.release_idempotency(session, owner=self.owner, key=self.key)

"""API keys: ``et_<id>_<secret>``; only a SHA-256 of the secret is stored, compared in
constant time. Roles: admin ⊃ user ⊃ inference. A key belongs to one project and sees only
that project's rows; admin keys also manage projects and keys (of every project)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.orm import Session

from core.errors import CoreError, InvalidInput, NotFound
from core.store import repos
from core.store.tables import DEFAULT_PROJECT, ApiKeyRow, ProjectRow, utcnow

Role = Literal["admin", "user", "inference"]
ROLES: tuple[Role, ...] = ("admin", "user", "inference")
RANK = {"inference": 0, "user": 1, "admin": 2}


class Unauthorized(CoreError):
    code = "invalid_api_key"


class Forbidden(CoreError):
    code = "forbidden"


@dataclass(frozen=True)
class Principal:
    key_id: str
    name: str
    role: Role
    project_id: str

    def require(self, role: Role) -> None:
        if RANK[self.role] < RANK[role]:
            raise Forbidden(f"a {role} key is needed; this key is {self.role}", param="api_key")


def _hash(secret: str) -> str:
    # The secret has 256 bits of entropy: a fast hash is enough, no password hashing needed.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_key(session: Session, *, name: str, role: str, project_id: str = DEFAULT_PROJECT) -> str:
    """Store a new key of project ``project_id`` and return it; the plain key is shown once,
    never stored."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", param="role")
    if session.get(ProjectRow, project_id) is None:
        raise NotFound(
            f"project '{project_id}' does not exist", code="project_not_found", param="project_id"
        )
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    session.add(
        ApiKeyRow(id=key_id, name=name, role=role, project_id=project_id, secret_hash=_hash(secret))
    )
    session.flush()
    return f"et_{key_id}_{secret}"


def key_id_of(key: str) -> str:
    """The id part of a well-formed key ``et_<id>_<secret>``."""
    return key[3:].split("_", 1)[0]


def authenticate(session: Session, presented: str | None) -> Principal:
    """The principal of a presented key; ``Unauthorized`` for a missing, unknown, revoked or
    wrong key (one message for all, so a caller learns nothing about which)."""
    denied = Unauthorized(
        "a valid API key is required (Authorization: Bearer et_...)", param="api_key"
    )
    if not presented or not presented.startswith("et_") or presented.count("_") < 2:
        raise denied
    key_id, secret = presented[3:].split("_", 1)
    row = session.get(ApiKeyRow, key_id)
    expected = row.secret_hash if row is not None else _hash("no such key")
    if not hmac.compare_digest(expected, _hash(secret)) or row is None or row.revoked_at:
        raise denied
    return Principal(row.id, row.name, row.role, row.project_id)  # type: ignore[arg-type]


def list_keys(session: Session, *, project_id: str | None = None) -> list[ApiKeyRow]:
    """Keys, oldest first; only those of ``project_id`` when given."""
    return repos.list_keys(session, project_id=project_id)


def revoke_key(session: Session, *, key_id: str) -> None:
    row = session.get(ApiKeyRow, key_id)
    if row is None:
        raise NotFound(f"API key '{key_id}' does not exist", code="key_not_found", param="id")
    row.revoked_at = row.revoked_at or utcnow()

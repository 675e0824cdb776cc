"""Project and API key bodies (admin routes)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.common import ReadModel
from core.names import Name
from core.safe_values import SafeText
from core.store.tables import DEFAULT_PROJECT

ID_PATTERN = r"^[\w-]{1,40}$"  # what ids look like: anything else is refused before SQL


class ProjectCreate(BaseModel):
    name: Name = Field(description="Letters, digits, '.', '_', '-' (64 at most).")


class ProjectRead(ReadModel):
    id: str
    name: str
    created_at: datetime


class ProjectList(BaseModel):
    items: list[ProjectRead]


class KeyCreate(BaseModel):
    name: SafeText = Field(min_length=1, max_length=200, description="Who or what uses the key.")
    role: Literal["admin", "user", "inference"] = "user"
    project_id: str = Field(
        DEFAULT_PROJECT, pattern=ID_PATTERN, description="The project whose rows the key sees."
    )


class KeyRead(ReadModel):
    id: str
    name: str
    role: str
    project_id: str
    created_at: datetime
    revoked_at: datetime | None


class KeyCreated(KeyRead):
    key: str = Field(description="The key itself, shown this once: only its hash is stored.")


class KeyList(BaseModel):
    items: list[KeyRead]

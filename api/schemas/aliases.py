"""Alias bodies: a project's name for a (model, index) pair, and its moves."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import ReadModel
from core.jobs.common import Id


class AliasUpdate(BaseModel):
    """Where to point the alias; ``force`` skips a failing gate (recorded with the key)."""

    model_config = ConfigDict(extra="forbid")

    model_id: Id = Field(description="A fine-tuned model of the project.")
    index_id: Id | None = Field(None, description="An index built with that model.")
    force: bool = False


class AliasRead(ReadModel):
    name: str
    model_id: str
    index_id: str | None
    version: int = Field(description="1 when created, +1 at each move.")
    figures: dict[str, Any] = Field(description="What the gate measured at the last move.")
    updated_by: str
    updated_at: datetime


class AliasList(BaseModel):
    items: list[AliasRead]


class AliasEventRead(ReadModel):
    id: int
    alias: str
    action: str = Field(description="promoted, forced (the gate failed) or deleted.")
    model_id: str | None
    index_id: str | None
    previous_model_id: str | None
    previous_index_id: str | None
    forced: bool
    actor_key_id: str
    actor_name: str
    figures: dict[str, Any]
    at: datetime

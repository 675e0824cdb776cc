"""Model bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel


class ModelRead(BaseModel):
    id: str
    kind: Literal["base", "finetuned"]
    reference: str
    method: str | None = None
    base_model: str | None = None
    job_id: str | None = None
    dataset_id: str | None = None
    metrics: dict[str, Any] = {}
    created_at: datetime | None = None


class ModelList(BaseModel):
    items: list[ModelRead]

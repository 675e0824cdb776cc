"""Dataset bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from api.schemas.common import ReadModel


class DatasetRead(ReadModel):
    id: str
    name: str
    format: str
    split: str
    stats: dict[str, Any]
    checksum: str
    size_bytes: int
    source_job_id: str | None
    created_at: datetime


class DatasetPage(ReadModel):
    items: list[DatasetRead]
    total: int
    limit: int
    offset: int

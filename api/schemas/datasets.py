"""Dataset bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import ReadModel
from core.jobs.common import Id
from core.names import Name


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


class CorrectionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query_id: Id
    doc_id: Id = Field(description="Listed as a negative of the query; in fact relevant.")


class DatasetCorrections(BaseModel):
    """Negatives that are positives (e.g. from a mine job's ``review``)."""

    model_config = ConfigDict(extra="forbid")

    corrections: list[CorrectionItem] = Field(min_length=1, max_length=10_000)
    split: Name = Field("train", description="The split where they become relevant (grade 1).")
    name: Name | None = Field(
        None, description="The new dataset's name; default: <name>-corrected."
    )

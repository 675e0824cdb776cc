"""Job bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from api.schemas.common import ReadModel
from core.store.tables import JobRow


class JobError(BaseModel):
    code: str
    message: str | None


class JobRead(ReadModel):
    id: str
    type: str
    status: str
    spec: dict[str, Any]
    dataset_id: str | None
    parent_id: str | None = Field(description="The job that created this one (compare).")
    progress: float = Field(description="Percent done, 0-100.")
    stage: str | None
    current_step: int
    total_steps: int | None
    eta_seconds: float | None
    result: dict[str, Any]
    error: JobError | None
    attempts: int
    cancel_requested: bool
    worker: str | None
    heartbeat_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, row: JobRow) -> JobRead:
        data = {k: getattr(row, k) for k in cls.model_fields if k not in ("progress", "error")}
        error = JobError(code=row.error_code, message=row.error_message) if row.error_code else None
        return cls(**data, progress=round(row.progress * 100, 2), error=error)


class JobPage(BaseModel):
    items: list[JobRead]
    total: int
    limit: int
    offset: int


class JobEventRead(ReadModel):
    id: int
    at: datetime
    kind: str
    level: str
    message: str
    data: dict[str, Any]


class ArtifactRead(BaseModel):
    path: str = Field(description="Under the job's artifacts folder.")
    bytes: int


class MetricPoint(BaseModel):
    step: int
    value: float
    at: datetime


class JobMetrics(BaseModel):
    job_id: str
    series: dict[str, list[MetricPoint]]

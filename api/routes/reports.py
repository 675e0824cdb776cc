"""/v1/jobs/{id}/children and /v1/jobs/{id}/report: a compare job's methods and its report."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.deps import JobDep, SessionDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.jobs import JobRead
from core.compare import CompareReport, to_markdown
from core.errors import Conflict
from core.store import repos

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.get("/{job_id}/children", response_model=list[JobRead])
def job_children(job: JobDep, session: SessionDep) -> list[JobRead]:
    """The jobs this job created (a compare job's one job per method), oldest first."""
    return [JobRead.of(row) for row in repos.child_jobs(session, parent_id=job.id)]


@router.get(
    "/{job_id}/report",
    responses={200: {"content": {"application/json": {}, "text/markdown": {}}}},
)
def job_report(
    job: JobDep,
    format: Annotated[Literal["json", "markdown"], Query(description="Body format.")] = "json",
) -> Response:
    """A finished compare job's report: per method test metrics, change against the base,
    forgetting, wall time, whether the corpus must be re-encoded, per-query wins and losses."""
    if job.type != "compare":
        raise Conflict(f"job '{job.id}' is a {job.type} job: no report", code="no_report")
    if job.status != "succeeded":
        raise Conflict(f"job '{job.id}' is {job.status}: no report yet", code="job_not_finished")
    data = job.result["report"]
    if format == "json":
        return JSONResponse(data)
    return PlainTextResponse(to_markdown(CompareReport.from_dict(data)), media_type="text/markdown")

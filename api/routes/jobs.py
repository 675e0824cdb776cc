"""/v1/jobs: submit, list, read, events, metrics, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status
from fastapi.responses import JSONResponse

from api.deps import (
    EnqueueDep,
    FactoryDep,
    GuardDep,
    IdempotencyKey,
    JobDep,
    SessionDep,
    SettingsDep,
    replayed,
)
from api.errors import error_body
from api.schemas.common import ERROR_RESPONSES, MAX_OFFSET
from api.schemas.jobs import ArtifactRead, JobEventRead, JobMetrics, JobPage, JobRead, MetricPoint
from api.security import User
from core.errors import CoreError
from core.jobs import service
from core.jobs.registry import JobRequest, JobStatus, JobType
from core.services.idempotency import Idempotency
from core.store import repos
from core.store.tables import JobRow

MAX_ARTIFACTS = 500
router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead)
def submit_job(
    request: Annotated[JobRequest, Body()],
    factory: FactoryDep,
    enqueue: EnqueueDep,
    principal: User,
    settings: SettingsDep,
    guard_for: GuardDep,
    idempotency_key: IdempotencyKey = None,  # documents the header; GuardDep reads it
) -> JSONResponse:
    """Queue a job; it runs on a worker. Poll ``Location`` for its status."""
    guard = guard_for(request.model_dump(mode="json"))
    if (stored := guard.replay()) is not None:
        return replayed(stored)
    try:
        job = service.submit_job(
            factory,
            request,
            enqueue=enqueue,
            project_id=principal.project_id,
            models_dir=settings.models_dir,
        )
    except service.NotEnqueued as exc:  # stored: a retry with the key gets this job
        return _accepted(guard, exc.job, unavailable=exc)
    except BaseException:
        guard.release()
        raise
    return _accepted(guard, job)


def _accepted(
    guard: Idempotency, job: JobRow, unavailable: CoreError | None = None
) -> JSONResponse:
    """202 with the job, kept for retries; 503 with it when the broker has not taken it."""
    body = JobRead.of(job).model_dump(mode="json")
    headers = {"Location": f"/v1/jobs/{job.id}"}
    guard.remember(status.HTTP_202_ACCEPTED, body, headers)
    if unavailable is None:
        return JSONResponse(body, status.HTTP_202_ACCEPTED, headers=headers)
    error = error_body(unavailable.code, unavailable.message, unavailable.param, 503, job=body)
    return JSONResponse(error, 503, headers={**headers, "Retry-After": "5"})


@router.get("", response_model=JobPage)
def list_jobs(
    session: SessionDep,
    caller: User,
    type: JobType | None = None,
    status: JobStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> JobPage:
    """The jobs of the caller's project, newest first."""
    rows, total = repos.list_jobs(
        session, project_id=caller.project_id, type=type, status=status, limit=limit, offset=offset
    )
    return JobPage(items=[JobRead.of(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{job_id}", response_model=JobRead)
def get_job(job: JobDep) -> JobRead:
    return JobRead.of(job)


@router.get("/{job_id}/events", response_model=list[JobEventRead])
def job_events(
    job: JobDep,
    session: SessionDep,
    after: Annotated[int, Query(ge=0, le=MAX_OFFSET, description="Events with a larger id.")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[JobEventRead]:
    rows = repos.list_events(session, job_id=job.id, after=after, limit=limit)
    return [JobEventRead.model_validate(r) for r in rows]


@router.get("/{job_id}/metrics", response_model=JobMetrics)
def job_metrics(
    job: JobDep,
    session: SessionDep,
    name: Annotated[list[str] | None, Query(description="Only these series.")] = None,
) -> JobMetrics:
    series = repos.metric_series(session, job_id=job.id, names=name)
    return JobMetrics(
        job_id=job.id,
        series={
            k: [MetricPoint(step=s, value=v, at=a) for s, v, a in points]
            for k, points in series.items()
        },
    )


@router.get("/{job_id}/artifacts", response_model=list[ArtifactRead])
def job_artifacts(job: JobDep, settings: SettingsDep) -> list[ArtifactRead]:
    """The files the job wrote (reports, the model directory), by path under its folder."""
    folder = settings.jobs_dir / job.id
    if not folder.is_dir():
        return []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())
    return [
        ArtifactRead(path=p.relative_to(folder).as_posix(), bytes=p.stat().st_size)
        for p in files[:MAX_ARTIFACTS]
    ]


@router.post("/{job_id}/cancel", response_model=JobRead)
def cancel_job(job: JobDep, factory: FactoryDep, enqueue: EnqueueDep) -> JobRead:
    """Cancel: a queued job never starts; a running one stops at its next step."""
    return JobRead.of(service.cancel_job(factory, job_id=job.id, enqueue=enqueue))

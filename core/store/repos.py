"""Repositories: keyword-only verbs over the tables; the only module that builds queries."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, Select, delete, func, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.errors import NotFound
from core.store.tables import (
    ApiKeyRow,
    DatasetRow,
    IdempotencyRow,
    IndexRow,
    JobDependencyRow,
    JobEventRow,
    JobRow,
    MetricRow,
    ModelRow,
    ProjectRow,
    utcnow,
)

T = TypeVar("T")
R = TypeVar("R", ModelRow, IndexRow)

ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")


def get_or_404(
    session: Session, table: type[T], id: str, what: str, *, project_id: str | None = None
) -> T:
    """The row ``id``; with ``project_id``, a row of another project is as missing as none."""
    # Ids with NUL bytes or absurd lengths are never stored; Postgres would refuse the query.
    row = None if "\x00" in id or len(id) > 200 else session.get(table, id)
    if row is None or project_id not in (None, row.project_id):  # type: ignore[attr-defined]
        raise NotFound(f"{what} '{id}' does not exist", code=f"{what}_not_found", param="id")
    return row


# datasets ----------------------------------------------------------------------------------


def add_dataset(session: Session, **values: Any) -> DatasetRow:
    row = DatasetRow(**values)
    session.add(row)
    session.flush()
    return row


def list_datasets(
    session: Session, *, project_id: str, limit: int, offset: int
) -> tuple[list[DatasetRow], int]:
    query = select(DatasetRow).where(DatasetRow.project_id == project_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(DatasetRow.created_at.desc(), DatasetRow.id).limit(limit).offset(offset)
    )
    return list(rows), total


def dataset_from_job(session: Session, *, job_id: str) -> DatasetRow | None:
    return session.scalar(select(DatasetRow).where(DatasetRow.source_job_id == job_id))


def active_jobs(session: Session) -> list[JobRow]:
    return list(session.scalars(select(JobRow).where(JobRow.status.in_(ACTIVE))))


def active_jobs_using(session: Session, *, dataset_id: str) -> list[str]:
    rows = session.scalars(
        select(JobRow.id).where(JobRow.dataset_id == dataset_id, JobRow.status.in_(ACTIVE))
    )
    return list(rows)


# jobs --------------------------------------------------------------------------------------


def add_job(session: Session, **values: Any) -> JobRow:
    row = JobRow(**values)
    session.add(row)
    session.flush()
    add_event(session, job_id=row.id, kind="state", message="queued")
    return row


def lock_job(session: Session, *, job_id: str) -> JobRow:
    """The job row, locked for the rest of the transaction (row lock on Postgres)."""
    row = session.scalar(select(JobRow).where(JobRow.id == job_id).with_for_update())
    if row is None:
        raise NotFound(f"job '{job_id}' does not exist", code="job_not_found", param="id")
    return row


def list_jobs(
    session: Session,
    *,
    project_id: str,
    type: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[JobRow], int]:
    query = select(JobRow).where(JobRow.project_id == project_id)
    if type:
        query = query.where(JobRow.type == type)
    if status:
        query = query.where(JobRow.status == status)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(JobRow.created_at.desc(), JobRow.id).limit(limit).offset(offset)
    )
    return list(rows), total


def job_counts(session: Session) -> list[tuple[str, str, int]]:
    """(type, status, number of jobs) over every project."""
    query = select(JobRow.type, JobRow.status, func.count()).group_by(JobRow.type, JobRow.status)
    return [(t, s, n) for t, s, n in session.execute(query)]


def child_jobs(session: Session, *, parent_id: str) -> list[JobRow]:
    """The jobs ``parent_id`` created, oldest first."""
    query = select(JobRow).where(JobRow.parent_id == parent_id)
    return list(session.scalars(query.order_by(JobRow.created_at, JobRow.id)))


def job_project(session: Session, *, job_id: str) -> str:
    """The project of job ``job_id``: what the rows it creates belong to."""
    return session.scalars(select(JobRow.project_id).where(JobRow.id == job_id)).one()


def update_leased(session: Session, *, job_id: str, token: str, **values: Any) -> bool:
    """Update a job only while ``token`` holds its lease; False when the lease is gone."""
    result = session.execute(
        update(JobRow).where(JobRow.id == job_id, JobRow.lease_token == token).values(**values)
    )
    return result.rowcount == 1


def add_dependency(session: Session, *, job_id: str, depends_on: str, required: bool) -> None:
    session.add(JobDependencyRow(job_id=job_id, depends_on=depends_on, required=required))
    session.flush()


def dependencies_on(session: Session, *, job_id: str) -> list[JobDependencyRow]:
    """The links of the jobs that wait for ``job_id``."""
    query = select(JobDependencyRow).where(JobDependencyRow.depends_on == job_id)
    return list(session.scalars(query.order_by(JobDependencyRow.job_id)))


def _waiting_jobs() -> Select:
    """Ids of the jobs that wait for a job that has not finished (one row per such link)."""
    return (
        select(JobDependencyRow.job_id)
        .join(JobRow, JobRow.id == JobDependencyRow.depends_on)
        .where(JobRow.status.in_(ACTIVE))
    )


def unfinished_dependencies(session: Session, *, job_id: str) -> int:
    """How many of the jobs ``job_id`` waits for have not finished."""
    links = _waiting_jobs().where(JobDependencyRow.job_id == job_id).subquery()
    return session.scalar(select(func.count()).select_from(links)) or 0


def job_flags(session: Session, *, job_id: str) -> Row | None:
    """(cancel_requested, handoff_requested, lease_token) of a job."""
    return session.execute(
        select(JobRow.cancel_requested, JobRow.handoff_requested, JobRow.lease_token).where(
            JobRow.id == job_id
        )
    ).first()


def stale_running(session: Session, *, before: datetime) -> list[JobRow]:
    """Running jobs whose heartbeat is older than ``before``, locked (others skipped)."""
    query = select(JobRow).where(JobRow.status == "running", JobRow.heartbeat_at < before)
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def queued_before(session: Session, *, before: datetime) -> list[JobRow]:
    """Queued jobs last handed to the broker before ``before`` (or never) that wait for no
    unfinished job."""
    query = select(JobRow).where(
        JobRow.status == "queued",
        (JobRow.enqueued_at < before) | JobRow.enqueued_at.is_(None),
        JobRow.id.not_in(_waiting_jobs()),
    )
    return list(session.scalars(query.with_for_update(skip_locked=True)))


def request_handoff(session: Session, *, worker: str) -> list[str]:
    """Ask the jobs ``worker`` runs to hand themselves back; returns their ids."""
    rows = session.scalars(
        update(JobRow)
        .where(JobRow.status == "running", JobRow.worker == worker)
        .values(handoff_requested=True)
        .returning(JobRow.id)
    )
    return list(rows)


def add_event(
    session: Session,
    *,
    job_id: str,
    kind: str,
    message: str,
    level: str = "info",
    data: dict[str, Any] | None = None,
) -> None:
    session.add(
        JobEventRow(
            job_id=job_id, kind=kind, message=message, level=level, data=data or {}, at=utcnow()
        )
    )


def list_events(session: Session, *, job_id: str, after: int, limit: int) -> list[JobEventRow]:
    rows = session.scalars(
        select(JobEventRow)
        .where(JobEventRow.job_id == job_id, JobEventRow.id > after)
        .order_by(JobEventRow.id)
        .limit(limit)
    )
    return list(rows)


def add_metrics(session: Session, *, job_id: str, step: int, values: dict[str, float]) -> None:
    """Record ``values`` at ``step``; a step recorded again (a resumed job) is overwritten."""
    if not values:
        return
    rows = [
        {"job_id": job_id, "step": step, "name": name, "value": float(value), "at": utcnow()}
        for name, value in values.items()
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    statement = insert(MetricRow).values(rows)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["job_id", "name", "step"],
            set_={"value": statement.excluded.value, "at": statement.excluded.at},
        )
    )


def metric_series(
    session: Session, *, job_id: str, names: Sequence[str] | None = None
) -> dict[str, list[tuple[int, float, datetime]]]:
    query = select(MetricRow).where(MetricRow.job_id == job_id)
    if names:
        query = query.where(MetricRow.name.in_(names))
    series: dict[str, list[tuple[int, float, datetime]]] = {}
    for row in session.scalars(query.order_by(MetricRow.name, MetricRow.step, MetricRow.id)):
        series.setdefault(row.name, []).append((row.step, row.value, row.at))
    return series


# models and indexes ------------------------------------------------------------------------


def upsert_by_job(session: Session, table: type[R], *, job_id: str, **values: Any) -> R:
    """One row per job: a retried job overwrites its own row instead of adding another."""
    row = session.scalar(select(table).where(table.job_id == job_id))
    if row is None:
        row = table(job_id=job_id, **values)
        session.add(row)
    else:
        for key, value in values.items():
            setattr(row, key, value)
    session.flush()
    return row


def model_project(session: Session, *, model_id: str) -> str | None:
    """The project of tuned model ``model_id``; None when there is no such model."""
    return session.scalar(select(ModelRow.project_id).where(ModelRow.id == model_id))


def list_rows(session: Session, table: type[R], *, project_id: str) -> list[R]:
    query = select(table).where(table.project_id == project_id)
    return list(session.scalars(query.order_by(table.created_at.desc(), table.id)))


# idempotency keys --------------------------------------------------------------------------


PENDING = 0  # the status code of a reservation whose request is still being handled


def reserve_idempotency(session: Session, *, owner: str, key: str, request_hash: str) -> None:
    """``IntegrityError`` when ``owner`` already used ``key``."""
    session.add(
        IdempotencyRow(owner=owner, key=key, request_hash=request_hash, status_code=PENDING)
    )
    session.flush()


def find_idempotency(session: Session, *, owner: str, key: str) -> IdempotencyRow | None:
    query = select(IdempotencyRow).where(IdempotencyRow.owner == owner, IdempotencyRow.key == key)
    return session.scalar(query)


def release_idempotency(session: Session, *, owner: str, key: str) -> None:
    """Forget a reservation (not an answered key) so that its request may be retried."""
    session.execute(
        delete(IdempotencyRow).where(
            IdempotencyRow.owner == owner,
            IdempotencyRow.key == key,
            IdempotencyRow.status_code == PENDING,
        )
    )


def reclaim_idempotency(
    session: Session,
    *,
    owner: str,
    key: str,
    request_hash: str,
    pending_before: datetime,
    answered_before: datetime,
) -> bool:
    """Reserve an expired record for a new request: a reservation older than
    ``pending_before`` (its request died) or an answer older than ``answered_before``."""
    result = session.execute(
        update(IdempotencyRow)
        .where(
            IdempotencyRow.owner == owner,
            IdempotencyRow.key == key,
            _expired(pending_before, answered_before),
        )
        .values(
            request_hash=request_hash,
            status_code=PENDING,
            response={},
            headers={},
            created_at=utcnow(),
        )
    )
    return result.rowcount == 1


def purge_idempotency(
    session: Session, *, pending_before: datetime, answered_before: datetime
) -> int:
    """Delete expired records; returns how many."""
    result = session.execute(
        delete(IdempotencyRow).where(_expired(pending_before, answered_before))
    )
    return result.rowcount


def _expired(pending_before: datetime, answered_before: datetime) -> ColumnElement[bool]:
    """A reservation older than ``pending_before`` (its request died), or any record older
    than ``answered_before``."""
    stale_reservation = (IdempotencyRow.status_code == PENDING) & (
        IdempotencyRow.created_at < pending_before
    )
    return stale_reservation | (IdempotencyRow.created_at < answered_before)


# API keys ----------------------------------------------------------------------------------


def list_keys(session: Session, *, project_id: str | None = None) -> list[ApiKeyRow]:
    """Keys, oldest first; only those of ``project_id`` when given."""
    query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
    if project_id is not None:
        query = query.where(ApiKeyRow.project_id == project_id)
    return list(session.scalars(query))


# projects, health ---------------------------------------------------------------------------


def project_named(session: Session, *, name: str) -> ProjectRow | None:
    return session.scalar(select(ProjectRow).where(ProjectRow.name == name))


def list_projects(session: Session) -> list[ProjectRow]:
    query = select(ProjectRow).order_by(ProjectRow.created_at, ProjectRow.id)
    return list(session.scalars(query))


def ping(session: Session) -> None:
    """A round trip to the database (``/readyz``)."""
    session.execute(text("SELECT 1"))

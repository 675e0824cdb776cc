"""Repository of model aliases and their history (the queries ``repos`` would otherwise hold)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.store.tables import AliasEventRow, AliasRow, IndexRow, utcnow


def get_alias(session: Session, *, project_id: str, name: str) -> AliasRow | None:
    return session.get(AliasRow, (project_id, name))


def lock_alias(session: Session, *, project_id: str, name: str, **initial: Any) -> AliasRow:
    """The alias row, created with ``initial`` values when missing (concurrent creators
    agree on one row), locked for the rest of the transaction."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(AliasRow)
        .values(project_id=project_id, name=name, version=0, updated_at=utcnow(), **initial)
        .on_conflict_do_nothing(index_elements=["project_id", "name"])
    )
    query = select(AliasRow).where(AliasRow.project_id == project_id, AliasRow.name == name)
    return session.scalars(query.with_for_update().execution_options(populate_existing=True)).one()


def list_aliases(session: Session, *, project_id: str) -> list[AliasRow]:
    query = select(AliasRow).where(AliasRow.project_id == project_id).order_by(AliasRow.name)
    return list(session.scalars(query))


def aliases_using(
    session: Session, *, model_id: str | None = None, dataset_id: str | None = None
) -> list[str]:
    """Names of the aliases that point at ``model_id``, or at an index of ``dataset_id``."""
    query = select(AliasRow.name)
    if model_id is not None:
        query = query.where(AliasRow.model_id == model_id)
    if dataset_id is not None:
        query = query.join(IndexRow, IndexRow.id == AliasRow.index_id).where(
            IndexRow.dataset_id == dataset_id
        )
    return list(session.scalars(query.order_by(AliasRow.name)))


def add_alias_event(session: Session, **values: Any) -> AliasEventRow:
    row = AliasEventRow(**values, at=utcnow())
    session.add(row)
    session.flush()
    return row


def alias_events(
    session: Session, *, project_id: str, name: str, limit: int
) -> list[AliasEventRow]:
    """The latest moves of an alias, newest first."""
    query = select(AliasEventRow).where(
        AliasEventRow.project_id == project_id, AliasEventRow.alias == name
    )
    return list(session.scalars(query.order_by(AliasEventRow.id.desc()).limit(limit)))

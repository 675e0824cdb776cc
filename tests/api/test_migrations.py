"""Alembic creates the whole schema, and the migrations run down and up again on Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from core.store.db import alembic_config
from core.store.tables import Base
from tests.conftest import PG_ADMIN


@pytest.fixture
def empty_db() -> Iterator[str]:
    name = f"embedtune_mig_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield f"{PG_ADMIN}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names - {"alembic_version"}


def test_upgrade_downgrade_upgrade(empty_db: str) -> None:
    config = alembic_config(empty_db)
    command.upgrade(config, "head")
    assert tables(empty_db) == set(Base.metadata.tables)
    command.downgrade(config, "base")
    assert tables(empty_db) == set()
    command.upgrade(config, "head")
    assert tables(empty_db) == set(Base.metadata.tables)


def test_migrations_match_the_tables(empty_db: str) -> None:
    """Autogenerate finds nothing to add: the models and the migrations agree."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    command.upgrade(alembic_config(empty_db), "head")
    engine = create_engine(empty_db)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []

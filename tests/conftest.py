"""Shared fixtures: a tiny offline BERT model, the sample data, real Postgres and Redis."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.settings import Settings
from tests.servers import start_services

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "scifact-sample"
SHARED = REPO.parent / "shared" / "datasets"


def sample_texts(limit: int = 400) -> list[str]:
    lines = (SAMPLE / "corpus.jsonl").read_text("utf-8").splitlines()[:limit]
    queries = (SAMPLE / "queries.jsonl").read_text("utf-8").splitlines()
    return [json.loads(x)["text"] for x in lines] + [json.loads(x)["text"] for x in queries]


def _tiny_bert(raw: Path, seed: int):  # -> BertConfig
    """A WordPiece vocab trained on the sample, saved to ``raw``, and a 2-layer BERT config."""
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertTokenizerFast

    raw.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sample_texts(), vocab_size=3000, min_frequency=2)
    BertTokenizerFast(vocab=wordpiece.get_vocab(), do_lower_case=True).save_pretrained(raw)
    torch.manual_seed(seed)
    return BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocab trained here; mean pooling, normalized."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from transformers import BertModel

    raw = out.parent / f"{out.name}-hf"
    BertModel(_tiny_bert(raw, seed)).save_pretrained(raw, safe_serialization=True)
    transformer = models.Transformer(str(raw), max_seq_length=64)
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(
        str(out), safe_serialization=True
    )
    return out


def build_tiny_reranker(out: Path, *, seed: int = 0) -> Path:
    """The same tiny BERT with a one-label sequence-classification head: a reranker checkpoint."""
    from transformers import BertForSequenceClassification

    config = _tiny_bert(out, seed)
    config.num_labels = 1
    config.architectures = ["BertForSequenceClassification"]
    BertForSequenceClassification(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_reranker_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_reranker(tmp_path_factory.mktemp("models") / "tiny-reranker")


@pytest.fixture(scope="session")
def tiny_colbert_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT as a ColBERT model (fresh 128-dim token projection, seeded), untrained."""
    import torch
    from sentence_transformers import MultiVectorEncoder

    from core.models.multi_vector import set_lengths

    torch.manual_seed(0)
    model = MultiVectorEncoder(str(tiny_model_dir), device="cpu", local_files_only=True)
    set_lengths(model, query_length=16, document_length=48)
    out = tmp_path_factory.mktemp("models") / "tiny-colbert"
    model.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE


# Real services: a fresh Postgres database and a Redis key prefix per test session. ----------

# Resolved when this module is imported (test modules import the two URLs), before any test:
# the servers pointed at or found on 127.0.0.1, else the session's own (tests/servers.py).
SERVICES = start_services(
    os.environ.get("EMBEDTUNE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432"),
    os.environ.get("EMBEDTUNE_TEST_REDIS", "redis://127.0.0.1:6379/0"),
    os.environ.get("EMBEDTUNE_TEST_SERVICES", "auto"),
)
PG_ADMIN, REDIS = SERVICES.pg_admin, SERVICES.redis


def pytest_report_header() -> list[str]:
    return [f"services: {name} {origin}" for name, origin in SERVICES.origin.items()]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in pytest_report_header():  # also under -q, which hides the header
        terminalreporter.write_line(line)


def pytest_unconfigure() -> None:
    SERVICES.stop()
TABLES = (
    "metrics",
    "job_dependencies",
    "job_events",
    "models",
    "indexes",
    "jobs",
    "datasets",
    "api_keys",
    "idempotency_keys",
    "projects",
)
DEFAULT_PROJECT_ROW = (
    "INSERT INTO projects (id, name, created_at) VALUES ('prj_default', 'default', now())"
)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A new Postgres database with the migrations applied; dropped at the end."""
    from sqlalchemy import create_engine, text

    from core.store.db import upgrade

    name = f"embedtune_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(f"{PG_ADMIN}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{PG_ADMIN}/{name}"
    upgrade(url)
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def broker_prefix() -> Iterator[str]:
    """A Redis key prefix of this session's own; its keys are deleted at the end."""
    import redis

    prefix = f"embedtune_test_{uuid.uuid4().hex[:10]}:"
    yield prefix
    client = redis.Redis.from_url(REDIS)
    for key in client.scan_iter(f"{prefix}*"):
        client.delete(key)


@pytest.fixture
def settings(tmp_path: Path, pg_url: str, broker_prefix: str) -> Iterator[Settings]:
    """Settings on the real services; the tables are emptied after each test (all but the
    default project, which the migrations made)."""
    from sqlalchemy import create_engine, text

    yield Settings(
        data_dir=tmp_path / "var",
        database_url=pg_url,
        broker_url=REDIS,
        broker_prefix=broker_prefix,
        reconcile_seconds=0,  # no reconciler thread: tests that need one run it themselves
    )
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        conn.execute(text(DEFAULT_PROJECT_ROW))
    engine.dispose()


def create_key(settings: Settings, role: str = "admin", project_id: str = "prj_default") -> str:
    """A new API key of ``role`` in project ``project_id`` of the settings' database."""
    from core.services.keys import create_key as create
    from core.store.db import make_engine, make_session_factory, transaction

    engine = make_engine(settings.db_url)
    with transaction(make_session_factory(engine)) as session:
        key = create(session, name=f"test-{role}", role=role, project_id=project_id)
    engine.dispose()
    return key


@pytest.fixture
def factory(settings: Settings):
    from core.store.db import make_engine, make_session_factory

    return make_session_factory(make_engine(settings.db_url))


@pytest.fixture
def sample_id(factory, settings: Settings) -> str:
    """The SciFact sample, registered in the settings' store as an upload would be."""
    import shutil

    from core.services.datasets import register_dataset, staging_dir
    from core.store.db import transaction

    staging = staging_dir(settings)
    shutil.copytree(SAMPLE, staging / "scifact", dirs_exist_ok=True)
    with transaction(factory) as session:
        return register_dataset(session, settings=settings, staging=staging).id


@pytest.fixture(params=["postgres", "sqlite"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """The settings of one store: the Postgres test database, or a fresh SQLite file (the
    ``embedtune up`` store) with the migrations applied."""
    if request.param == "postgres":
        return request.getfixturevalue("settings")
    from core.store.db import upgrade

    sqlite = Settings(data_dir=tmp_path / "var", reconcile_seconds=0)
    upgrade(sqlite.db_url)
    return sqlite

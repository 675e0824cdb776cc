"""Settings: environment names, and no placeholder secrets outside development."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.settings import Settings

GOOD_DB = "postgresql+psycopg://embedtune:Xq3v9r2L@db:5432/embedtune"
GOOD_REDIS = "redis://:Kp8w2Zt7@redis:6379/0"


def test_conventional_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", GOOD_DB)
    monkeypatch.setenv("CELERY_BROKER_URL", GOOD_REDIS)
    settings = Settings()
    assert (settings.db_url, settings.celery_broker_url) == (GOOD_DB, GOOD_REDIS)
    assert settings.host == "127.0.0.1"  # safe default bind


def test_development_defaults_need_no_services(tmp_path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert (
        settings.db_url.startswith("sqlite:///") and settings.celery_broker_url == "filesystem://"
    )


@pytest.mark.parametrize(
    ("db", "broker"),
    [
        (None, GOOD_REDIS),
        ("sqlite:///x.db", GOOD_REDIS),
        ("postgresql+psycopg://postgres:postgres@db/embedtune", GOOD_REDIS),
        ("postgresql+psycopg://embedtune@db/embedtune", GOOD_REDIS),
        (GOOD_DB, "redis://redis:6379/0"),
        (GOOD_DB, "redis://:changeme@redis:6379/0"),
    ],
)
def test_production_refuses_missing_or_placeholder_secrets(db, broker) -> None:
    with pytest.raises(ValidationError, match=r"production|placeholder"):
        Settings(environment="production", database_url=db, broker_url=broker)


def test_production_accepts_real_secrets() -> None:
    settings = Settings(environment="production", database_url=GOOD_DB, broker_url=GOOD_REDIS)
    assert settings.environment == "production"

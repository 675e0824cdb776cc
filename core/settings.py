"""Process settings, read from the environment by entry points only (never at import time)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where EmbedTune keeps its state and files, and what model loading may do.

    Every field reads ``EMBEDTUNE_<NAME>``; the database and broker URLs also read the
    conventional ``DATABASE_URL`` and ``CELERY_BROKER_URL``. Left unset, both live under
    ``data_dir`` (SQLite and kombu's filesystem transport): one machine, no services.
    """

    model_config = SettingsConfigDict(
        env_prefix="EMBEDTUNE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    data_dir: Path = Path("var")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("EMBEDTUNE_DATABASE_URL", "DATABASE_URL")
    )
    broker_url: str | None = Field(
        None, validation_alias=AliasChoices("EMBEDTUNE_BROKER_URL", "CELERY_BROKER_URL")
    )
    broker_prefix: str = ""  # Redis key prefix, to share one Redis between deployments
    host: str = "127.0.0.1"
    port: int = 8000
    trust_remote_code: bool = False  # only an operator may enable remote model code
    device: str | None = None  # "cpu", "cuda", ...; None picks CUDA when present
    max_upload_bytes: int = 2 << 30
    job_max_attempts: int = 3  # deliveries of one job before it fails as worker_lost
    heartbeat_seconds: float = 5.0  # a running job's worker refreshes its lease this often
    lease_seconds: float = 60.0  # a running job whose heartbeat is older is taken back
    reconcile_seconds: float = 30.0  # how often the API re-enqueues lost and stale jobs

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'embedtune.db').resolve()}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache" / "embeddings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


@lru_cache
def get_settings() -> Settings:
    return Settings()

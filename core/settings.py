"""Process settings, read from the environment (prefix ``EMBEDTUNE_``) by entry points only."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Where EmbedTune keeps its files, and what model loading may do."""

    model_config = SettingsConfigDict(env_prefix="EMBEDTUNE_", env_file=".env", extra="ignore")

    data_dir: Path = Path("var")
    trust_remote_code: bool = False  # only an operator may enable remote model code
    device: str | None = None  # "cpu", "cuda", ...; None picks CUDA when present

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache" / "embeddings"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


@lru_cache
def get_settings() -> Settings:
    return Settings()

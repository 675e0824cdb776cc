"""Per-process resources of a worker, created on first use (after the fork)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings, get_settings
from core.store.db import make_engine, make_session_factory


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    factory: sessionmaker[Session]


@lru_cache(maxsize=1)
def runtime() -> Runtime:
    settings = get_settings()
    return Runtime(settings, make_session_factory(make_engine(settings.db_url)))

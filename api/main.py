"""Application factory. Routes for datasets, jobs and models arrive with the platform work."""

from __future__ import annotations

from fastapi import FastAPI

from core.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(title="EmbedTune", version="0.1.0")
    app.state.settings = settings or get_settings()

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    return app

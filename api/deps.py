"""Dependencies: settings, sessions, the enqueue function, and resources that own their 404."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session, sessionmaker

from core.jobs.service import Enqueue
from core.settings import Settings
from core.store import repos
from core.store.tables import DatasetRow, JobRow, ModelRow


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_factory(request: Request) -> sessionmaker[Session]:
    return request.app.state.factory


def get_session(
    factory: Annotated[sessionmaker[Session], Depends(get_factory)],
) -> Iterator[Session]:
    with factory() as session, session.begin():
        yield session


def get_enqueue(request: Request) -> Enqueue:
    return request.app.state.enqueue


SettingsDep = Annotated[Settings, Depends(get_settings)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        description="Retries with the same key get the first "
        "response; the same key with another body is a 409.",
    ),
]
FactoryDep = Annotated[sessionmaker[Session], Depends(get_factory)]
SessionDep = Annotated[Session, Depends(get_session)]
EnqueueDep = Annotated[Enqueue, Depends(get_enqueue)]


def dataset(session: SessionDep, dataset_id: str) -> DatasetRow:
    return repos.get_or_404(session, DatasetRow, dataset_id, "dataset")


def job(session: SessionDep, job_id: str) -> JobRow:
    return repos.get_or_404(session, JobRow, job_id, "job")


def model(session: SessionDep, model_id: str) -> ModelRow:
    return repos.get_or_404(session, ModelRow, model_id, "model")


DatasetDep = Annotated[DatasetRow, Depends(dataset)]
JobDep = Annotated[JobRow, Depends(job)]
ModelDep = Annotated[ModelRow, Depends(model)]

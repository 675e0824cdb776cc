"""Dependencies: settings, sessions, the enqueue function, and resources that own their 404.

A resource of another project than the caller's answers the very 404 of a missing id, so a
key learns nothing about other projects' rows (never a 403)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from api.security import Inference
from core.errors import NotFound
from core.jobs.ports import Enqueue
from core.services import aliases
from core.services.idempotency import Idempotency, Stored, body_hash
from core.settings import Settings
from core.store import repos
from core.store.tables import DatasetRow, IndexRow, JobRow, ModelRow


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


def dataset(session: SessionDep, caller: Inference, dataset_id: str) -> DatasetRow:
    return repos.get_or_404(
        session, DatasetRow, dataset_id, "dataset", project_id=caller.project_id
    )


def job(session: SessionDep, caller: Inference, job_id: str) -> JobRow:
    return repos.get_or_404(session, JobRow, job_id, "job", project_id=caller.project_id)


def model(session: SessionDep, caller: Inference, model_id: str) -> ModelRow:
    return repos.get_or_404(session, ModelRow, model_id, "model", project_id=caller.project_id)


def index(
    session: SessionDep, caller: Inference, index_id: Annotated[str, Path(pattern=r"^[\w-]{1,40}$")]
) -> IndexRow:
    """The index ``index_id``, or the index of the project's alias of that name (read once
    with its model: the pair of one move)."""
    target = aliases.resolve_now(session, project_id=caller.project_id, name=index_id)
    if target is not None:
        if target.index_id is None:
            raise NotFound(
                f"alias '{index_id}' names no index", code="alias_without_index", param="index_id"
            )
        index_id = target.index_id
    return repos.get_or_404(session, IndexRow, index_id, "index", project_id=caller.project_id)


DatasetDep = Annotated[DatasetRow, Depends(dataset)]
JobDep = Annotated[JobRow, Depends(job)]
ModelDep = Annotated[ModelRow, Depends(model)]
IndexDep = Annotated[IndexRow, Depends(index)]


def idempotency(
    request: Request,
    factory: FactoryDep,
    settings: SettingsDep,
    key: IdempotencyKey = None,
) -> Callable[..., Idempotency]:
    """``guard(*request_parts)``: the Idempotency-Key guard of this request and caller."""
    owner = request.state.principal.key_id  # set by the router's key dependency

    def guard(*parts: object) -> Idempotency:
        return Idempotency(
            factory,
            owner,
            key,
            body_hash(*parts),
            settings.idempotency_pending_seconds,
            settings.idempotency_ttl_seconds,
        )

    return guard


GuardDep = Annotated[Callable[..., Idempotency], Depends(idempotency)]


def replayed(stored: Stored) -> JSONResponse:
    return JSONResponse(stored.body, stored.status_code, headers=stored.headers)

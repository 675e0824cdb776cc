"""/v1/aliases: a project's names for (model, index) pairs, moved through the quality gate."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from api.deps import SessionDep, SettingsDep
from api.schemas.aliases import AliasEventRead, AliasList, AliasRead, AliasUpdate
from api.schemas.common import ERROR_RESPONSES
from api.security import Inference, User
from core.services import aliases as catalog
from core.store import aliases as store

router = APIRouter(prefix="/v1/aliases", tags=["aliases"], responses=ERROR_RESPONSES)
AliasName = Annotated[str, Path(pattern=catalog.ALIAS_PATTERN, description="e.g. prod")]


@router.get("", response_model=AliasList)
def list_aliases(session: SessionDep, caller: Inference) -> AliasList:
    rows = store.list_aliases(session, project_id=caller.project_id)
    return AliasList(items=[AliasRead.model_validate(r) for r in rows])


@router.get("/{name}", response_model=AliasRead)
def get_alias(name: AliasName, session: SessionDep, caller: Inference) -> AliasRead:
    return AliasRead.model_validate(
        catalog.get_alias(session, project_id=caller.project_id, name=name)
    )


@router.put("/{name}", response_model=AliasRead)
def put_alias(
    name: AliasName,
    body: AliasUpdate,
    session: SessionDep,
    settings: SettingsDep,
    caller: User,
    request: Request,
) -> AliasRead:
    """Create or move the alias in one transaction. 409 ``promotion_refused`` with the
    measured ``figures`` when the model's validation score does not beat the current one
    (by ``EMBEDTUNE_PROMOTION_MIN_GAIN``) or its forgetting drop exceeds
    ``EMBEDTUNE_PROMOTION_MAX_FORGETTING_DROP``, unless ``force``."""
    row = catalog.promote(
        session,
        project_id=caller.project_id,
        name=name,
        model_id=body.model_id,
        index_id=body.index_id,
        force=body.force,
        actor=catalog.Actor(caller.key_id, caller.name),
        gate=catalog.GateSpec(
            metric=settings.promotion_metric,
            min_gain=settings.promotion_min_gain,
            max_forgetting_drop=settings.promotion_max_forgetting_drop,
        ),
    )
    read = AliasRead.model_validate(row)
    session.commit()
    request.app.state.aliases.forget(caller.project_id, name)
    return read


@router.delete("/{name}", status_code=status.HTTP_204_NO_CONTENT)
def delete_alias(name: AliasName, session: SessionDep, caller: User, request: Request) -> None:
    catalog.delete_alias(
        session,
        project_id=caller.project_id,
        name=name,
        actor=catalog.Actor(caller.key_id, caller.name),
    )
    session.commit()
    request.app.state.aliases.forget(caller.project_id, name)


@router.get("/{name}/events", response_model=list[AliasEventRead])
def alias_events(
    name: AliasName,
    session: SessionDep,
    caller: Inference,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[AliasEventRead]:
    """The alias's moves, newest first: who made each one and whether the gate was forced
    (also after the alias was deleted; 404 for a name the project never used)."""
    rows = store.alias_events(session, project_id=caller.project_id, name=name, limit=limit)
    if not rows:
        catalog.get_alias(session, project_id=caller.project_id, name=name)  # its 404
    return [AliasEventRead.model_validate(r) for r in rows]

"""/v1/projects and /v1/keys: admin keys create projects and the keys that work in them.

An admin key manages the projects and keys of the whole deployment, but like any key it
reads and writes data (datasets, jobs, models, indexes) of its own project only: to work in
another project, an admin creates a key there.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, status

from api.deps import SessionDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.projects import (
    ID_PATTERN,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyRead,
    ProjectCreate,
    ProjectList,
    ProjectRead,
)
from core.services import keys as auth
from core.services import projects
from core.store.tables import ApiKeyRow

router = APIRouter(prefix="/v1", tags=["projects"], responses=ERROR_RESPONSES)


@router.post("/projects", status_code=status.HTTP_201_CREATED, response_model=ProjectRead)
def create_project(body: ProjectCreate, session: SessionDep) -> ProjectRead:
    """A new, empty project (409 if the name is taken)."""
    return ProjectRead.model_validate(projects.create_project(session, name=body.name))


@router.get("/projects", response_model=ProjectList)
def list_projects(session: SessionDep) -> ProjectList:
    """Every project, oldest first (the default project among them)."""
    rows = projects.list_projects(session)
    return ProjectList(items=[ProjectRead.model_validate(r) for r in rows])


@router.post("/keys", status_code=status.HTTP_201_CREATED, response_model=KeyCreated)
def create_key(body: KeyCreate, session: SessionDep) -> KeyCreated:
    """A new key of ``role`` in ``project_id`` (404 for an unknown project); the response
    holds the key itself, shown this once."""
    key = auth.create_key(session, name=body.name, role=body.role, project_id=body.project_id)
    row = session.get(ApiKeyRow, auth.key_id_of(key))
    return KeyCreated(**KeyRead.model_validate(row).model_dump(), key=key)


@router.get("/keys", response_model=KeyList)
def list_keys(
    session: SessionDep,
    project_id: Annotated[
        str | None, Query(pattern=ID_PATTERN, description="Only its keys.")
    ] = None,
) -> KeyList:
    """Keys of every project (or of one), oldest first; never their secrets."""
    rows = auth.list_keys(session, project_id=project_id)
    return KeyList(items=[KeyRead.model_validate(r) for r in rows])


@router.delete("/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_key(
    key_id: Annotated[str, Path(pattern=ID_PATTERN)], session: SessionDep, request: Request
) -> None:
    """Revoke a key: refused from now on by this server, within the key cache's lifetime
    (``EMBEDTUNE_AUTH_CACHE_SECONDS``) by other API processes."""
    auth.revoke_key(session, key_id=key_id)
    request.app.state.keys.forget(key_id)

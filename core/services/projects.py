"""Projects: create, list, find by name. Rows of one project are invisible to another's keys."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from core.names import check_name
from core.store import repos
from core.store.tables import ProjectRow


def create_project(session: Session, *, name: str) -> ProjectRow:
    """A new project; 409 if the name is taken."""
    check_name(name, param="name")
    taken = Conflict(f"project '{name}' already exists", code="project_exists", param="name")
    if repos.project_named(session, name=name) is not None:
        raise taken
    row = ProjectRow(name=name)
    try:
        with session.begin_nested():  # a concurrent request may have taken it meanwhile
            session.add(row)
    except IntegrityError:
        raise taken from None
    return row


def list_projects(session: Session) -> list[ProjectRow]:
    return repos.list_projects(session)


def project_named(session: Session, name: str) -> ProjectRow:
    row = repos.project_named(session, name=name)
    if row is None:
        raise NotFound(f"project '{name}' does not exist", code="project_not_found", param="name")
    return row

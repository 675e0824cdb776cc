"""Projects: create, list, find by name. Rows of one project are invisible to another's keys."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput, NotFound
from core.store.tables import ProjectRow

NAME = re.compile(r"^[A-Za-z0-9][\w.-]{0,99}$")


def create_project(session: Session, *, name: str) -> ProjectRow:
    """A new project; 409 if the name is taken."""
    if not NAME.match(name):
        raise InvalidInput("a project name is 1-100 letters, digits, '.', '_' or '-'", param="name")
    if session.scalar(select(ProjectRow).where(ProjectRow.name == name)) is not None:
        raise Conflict(f"project '{name}' already exists", code="project_exists", param="name")
    row = ProjectRow(name=name)
    session.add(row)
    session.flush()
    return row


def list_projects(session: Session) -> list[ProjectRow]:
    return list(session.scalars(select(ProjectRow).order_by(ProjectRow.created_at, ProjectRow.id)))


def project_named(session: Session, name: str) -> ProjectRow:
    row = session.scalar(select(ProjectRow).where(ProjectRow.name == name))
    if row is None:
        raise NotFound(f"project '{name}' does not exist", code="project_not_found", param="name")
    return row

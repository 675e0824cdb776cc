"""`embedtune projects`: create and list projects (run by an operator on the server)."""

from __future__ import annotations

import typer
from rich.table import Table

from cli.app import app, console, server_sessions

projects = typer.Typer(
    help="Manage projects: each key sees only its project's rows.", no_args_is_help=True
)
app.add_typer(projects, name="projects")


@projects.command("create")
def create(name: str) -> None:
    """Create a project and print its id; then `embedtune keys create --project NAME`."""
    from core.services.projects import create_project
    from core.store.db import transaction

    with transaction(server_sessions()) as session:
        project_id = create_project(session, name=name).id
    print(project_id)


@projects.command("list")
def list_() -> None:
    """List projects (ids, names)."""
    from core.services.projects import list_projects

    with server_sessions()() as session:
        rows = list_projects(session)
    table = Table("id", "name", "created")
    for row in rows:
        table.add_row(row.id, row.name, f"{row.created_at:%Y-%m-%d %H:%M}")
    console.print(table)

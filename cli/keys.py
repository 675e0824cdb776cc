"""`embedtune keys`: create, list and revoke API keys (run by an operator on the server)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from cli.app import app, console, server_sessions

keys = typer.Typer(help="Manage API keys.", no_args_is_help=True)
app.add_typer(keys, name="keys")


@keys.command("create")
def create(
    role: Annotated[str, typer.Option(help="admin | user | inference")] = "user",
    name: Annotated[str, typer.Option(help="Who or what uses the key.")] = "",
    project: Annotated[str, typer.Option(help="The project whose rows it sees.")] = "default",
) -> None:
    """Create a key in a project and print it once (only its hash is stored)."""
    from core.services.keys import create_key
    from core.services.projects import project_named
    from core.store.db import transaction

    with transaction(server_sessions()) as session:
        project_id = project_named(session, project).id
        key = create_key(session, name=name or role, role=role, project_id=project_id)
    print(key)


@keys.command("list")
def list_() -> None:
    """List keys (ids, names, roles; never secrets)."""
    from core.services.keys import list_keys

    with server_sessions()() as session:
        rows = list_keys(session)
    table = Table("id", "name", "role", "project", "created", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            row.role,
            row.project_id,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            f"{row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "",
        )
    console.print(table)


@keys.command("revoke")
def revoke(key_id: str) -> None:
    """Revoke a key by id; requests with it are refused from now on."""
    from core.services.keys import revoke_key
    from core.store.db import transaction

    with transaction(server_sessions()) as session:
        revoke_key(session, key_id=key_id)
    console.print(f"revoked {key_id}")

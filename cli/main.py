"""Entry point of the `embedtune` command: registers every command module, maps errors."""

from __future__ import annotations

import sys

from cli import (  # noqa: F401  (registers)
    compare,
    datasets,
    documents,
    evaluate,
    finetune,
    keys,
    loop,
    mine,
    nudge,
    platform,
    projects,
    rerank,
)
from cli.app import app, print_error
from core.errors import CoreError


def main() -> None:
    """Run the CLI; a domain error prints its code and location and exits with status 2."""
    try:
        app()
    except CoreError as exc:
        print_error(exc)
        sys.exit(2)

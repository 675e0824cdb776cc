"""Client-supplied names that may meet the filesystem: one pattern, one check, one join.

Split, dataset, index, model and report names, and each part of an uploaded file's path,
pass :func:`check_name` at the API and again here before any path is built; paths are built
only by :func:`child_path`, which joins checked names under a root and verifies that the
resolved result stays under it (so a symlink cannot lead outside either).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from core.errors import InvalidInput

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = "1-64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit"


def is_name(value: str) -> bool:
    return bool(_NAME.fullmatch(value)) and ".." not in value


def check_name(value: str, *, param: str) -> str:
    """``value`` when it is a safe name, else ``InvalidInput`` naming ``param``."""
    if not isinstance(value, str) or not is_name(value):
        shown = repr(value[:40]) if isinstance(value, str) else type(value).__name__
        raise InvalidInput(
            f"{param} {shown} is not a valid name ({NAME_RULE}, no '..')",
            code="invalid_name",
            param=param,
        )
    return value


def child_path(root: Path, *names: str, param: str = "name") -> Path:
    """``root / name / ...`` for checked names, refused unless it resolves under ``root``."""
    for name in names:
        check_name(name, param=param)
    path = Path(root).joinpath(*names)
    base = Path(root).resolve()
    if not path.resolve().is_relative_to(base):
        raise InvalidInput(f"{param} leads outside its folder", code="invalid_name", param=param)
    return path


def slug(text: str, fallback: str = "dataset") -> str:
    """A safe name made from free text (a folder name for a report name, say)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("._-").replace("..", ".")
    return cleaned[:40] or fallback


def _pydantic_name(value: str) -> str:
    if not is_name(value):
        raise ValueError(f"not a valid name ({NAME_RULE}, no '..')")
    return value


Name = Annotated[
    str, StringConstraints(pattern=f"^{NAME_PATTERN}$"), AfterValidator(_pydantic_name)
]
"""A pydantic field type for names (422 naming the field at the API)."""

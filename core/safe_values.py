"""Values a client sends that the database or a worker could not take: checked at the edge.

Strings may not hold lone surrogates, NUL or other control characters (tab and newlines
aside); numbers must be finite; nesting is bounded. Postgres refuses NUL and surrogates in
text and JSONB, JSON has no NaN, and a worker should never be the first to find out.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator

from core.errors import InvalidInput

MAX_DEPTH = 32  # nesting of a JSON value (a spec, a record) before it is refused
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    char = found.group()
    kind = "a lone surrogate" if "\ud800" <= char <= "\udfff" else "a control character"
    return f"holds {kind} (U+{ord(char):04X}) at offset {found.start()}"


def check_value(value: Any, *, param: str = "", depth: int = 0) -> None:
    """Walk a JSON-like value; ``InvalidInput`` naming the offending path (``spec.epochs``)."""
    if depth > MAX_DEPTH:
        raise InvalidInput(
            f"{param} is nested deeper than {MAX_DEPTH} levels", code="too_deep", param=param
        )
    if isinstance(value, str):
        if problem := text_problem(value):
            raise InvalidInput(f"{param} {problem}", code="invalid_text", param=param)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInput(f"{param} must be a finite number", code="not_finite", param=param)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_value(key, param=f"{param}.<key>", depth=depth + 1)
            check_value(item, param=f"{param}.{key}" if param else str(key), depth=depth + 1)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_value(item, param=f"{param}[{i}]", depth=depth + 1)


def check_range(value: float | None, low: float, high: float, *, param: str) -> None:
    """``low <= value <= high`` for a finite number (None passes)."""
    if value is None:
        return
    try:
        inside = math.isfinite(value) and low <= value <= high
    except OverflowError:  # an int too large for a float
        inside = False
    if not inside:
        raise InvalidInput(f"{param} must be between {low:g} and {high:g}", param=param)


def too_deep(value: Any, limit: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests deeper than ``limit`` levels (looks no deeper than that)."""
    if not isinstance(value, dict | list):
        return False
    if limit == 0:
        return True
    children = value.values() if isinstance(value, dict) else value
    return any(too_deep(child, limit - 1) for child in children)


def _pydantic_text(value: str) -> str:
    if problem := text_problem(value):
        raise ValueError(problem)
    return value


SafeText = Annotated[str, AfterValidator(_pydantic_text)]
"""A pydantic string type that refuses what cannot be stored (422 naming the field)."""

"""How to read a user's file: column names and their aliases, empty texts, TSV quoting."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from core.errors import InvalidInput

# The field names readers look for, each with the column names it is also found under (in order).
ALIASES: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "query": ("query", "anchor", "question", "sentence1"),
        "positive": ("positive", "pos", "answer", "sentence2"),
        "negative": ("negative", "neg"),
        "score": ("score",),
        "label": ("label",),
        "prompt": ("prompt",),
        "pos": ("pos",),
        "neg": ("neg",),
        "sentence1": ("sentence1",),
        "sentence2": ("sentence2",),
        "query_id": ("query_id",),
    }
)


@dataclass(frozen=True)
class ReadOptions:
    """Options for reading line-oriented files and RAG JSON.

    Args:
        columns: field -> the file's column, e.g. ``{"query": "question"}``; applied before the
            aliases of ``ALIASES``.
        drop_empty: drop empty documents / rows and the judgments pointing at them (counted in
            the warnings) instead of refusing the file.
        tsv_quotes: treat ``"`` in TSV files as CSV quoting (off: quotes are text, as in GLUE).
    """

    columns: Mapping[str, str] = field(default_factory=dict)
    drop_empty: bool = False
    tsv_quotes: bool = False

    def __post_init__(self) -> None:
        unknown = sorted(set(self.columns) - set(ALIASES))
        if unknown:
            raise InvalidInput(
                f"cannot map {', '.join(unknown)}: fields are {', '.join(ALIASES)}",
                code="unknown_column",
                param="columns",
            )

    def as_dict(self) -> dict[str, object]:
        return {
            "columns": dict(self.columns),
            "drop_empty": self.drop_empty,
            "tsv_quotes": self.tsv_quotes,
        }


def parse_columns(text: str | None) -> dict[str, str]:
    """``"query=question,positive=answer"`` -> ``{"query": "question", "positive": "answer"}``."""
    mapping: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in (text or "").split(","))):
        name, sep, column = (s.strip() for s in item.partition("="))
        if not sep or not name or not column:
            raise InvalidInput(
                f"'{item}' is not field=column (e.g. query=question)",
                code="bad_columns",
                param="columns",
            )
        mapping[name] = column
    return mapping


def rename_columns(data: dict[str, object], columns: Mapping[str, str]) -> dict[str, object]:
    """``data`` with each mapped column renamed to its field. A column that already had a
    mapped field's name is kept as ``"<name> (replaced)"``, so it shows up as unused."""
    if not columns:
        return data
    renamed = {column: name for name, column in columns.items()}
    out: dict[str, object] = {}
    for key, value in data.items():
        if key in columns and key not in renamed:
            out[f"{key} (replaced)"] = value
        else:
            out[renamed.get(key, key)] = value
    return out


def find_key(data: Mapping[str, object], name: str) -> str | None:
    """The first key of ``data`` that holds field ``name`` (itself or an alias), or None."""
    return next((key for key in ALIASES[name] if key in data), None)

"""Line-oriented records (JSON lines, CSV, TSV): reading with located issues, and writing."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

from core.datasets.validate import Issues
from core.errors import DataIssue, DatasetInvalid, InvalidInput
from core.safe_values import MAX_DEPTH, too_deep

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
RECORD_SUFFIXES = (".jsonl", *TABLE_SUFFIXES)

# The keys that identify each line-oriented format; the first match wins.
SHAPES = (
    ("scored-pairs", ("sentence1", "sentence2")),
    ("flag-jsonl", ("query", "pos")),
    ("pairs", ("anchor", "positive")),
    ("pairs", ("query", "positive")),
)


@dataclass
class Record:
    """One record and where it came from; its getters report problems to ``issues``."""

    data: dict[str, object]
    file: str
    line: int
    issues: Issues
    failed: bool = False

    def problem(
        self, code: str, message: str, *, key: str | None = None, expected: str | None = None
    ) -> None:
        self.failed = True
        self.issues.add(code, message, file=self.file, line=self.line, field=key, expected=expected)

    def text(self, key: str, *, required: bool = True) -> str | None:
        """A non-empty string; an optional field that is absent, null or "" gives None."""
        value = self.data.get(key)
        if value is None or (value == "" and not required):
            if required:
                self.problem("missing_field", f"'{key}' is missing", key=key, expected="a text")
            return None
        if not isinstance(value, str):
            self.problem(
                "bad_type", f"'{key}' is {type(value).__name__}", key=key, expected="a string"
            )
            return None
        if not value.strip():
            self.problem("empty_text", f"'{key}' is empty", key=key, expected="a non-empty text")
            return None
        return value

    def texts(self, key: str, *, required: bool = True) -> list[str]:
        """A list of non-empty strings; an absent optional field gives []."""
        value = self.data.get(key)
        if value is None:
            if required:
                self.problem(
                    "missing_field", f"'{key}' is missing", key=key, expected="a list of texts"
                )
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(
                "bad_type", f"'{key}' is not a list of strings", key=key, expected="a list of texts"
            )
            return []
        for i, text in enumerate(value):
            if not text.strip():
                self.problem(
                    "empty_text", f"'{key}[{i}]' is empty", key=key, expected="non-empty texts"
                )
        return value

    def ident(self, key: str) -> str | None:
        """A non-empty string id (integers are accepted and turned into strings)."""
        value = self.data.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if value is None or value == "":
            self.problem("missing_field", f"'{key}' is missing", key=key, expected="an id")
            return None
        if not isinstance(value, str):
            self.problem(
                "bad_type", f"'{key}' is {type(value).__name__}", key=key, expected="a string id"
            )
            return None
        return value

    def score(self, key: str) -> float | None:
        """A finite number (CSV cells are parsed)."""
        if key not in self.data or self.data[key] in (None, ""):
            self.problem("missing_field", f"'{key}' is missing", key=key, expected="a number")
            return None
        return self._number(self.data[key], key)

    def scores(self, key: str, count: int) -> list[float] | None:
        """An optional list of ``count`` finite numbers."""
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or len(value) != count:
            self.problem(
                "bad_type",
                f"'{key}' is not a list of {count} numbers",
                key=key,
                expected=f"one score per text ({count})",
            )
            return None
        numbers = [n for v in value if (n := self._number(v, key)) is not None]
        return numbers if len(numbers) == count else None

    def _number(self, value: object, key: str) -> float | None:
        number = math.nan
        if isinstance(value, int | float | str) and not isinstance(value, bool):
            with suppress(ValueError, OverflowError):
                number = float(value)
        if not math.isfinite(number):
            self.problem("bad_score", f"'{key}' is {value!r}", key=key, expected="a finite number")
            return None
        return number


def missing_file(path: Path, expected: str) -> DatasetInvalid:
    issue = DataIssue("missing_file", f"there is no file at {path}", path.name, expected=expected)
    return DatasetInvalid(issues=[issue])


def unknown_format(path: Path, message: str, expected: str) -> DatasetInvalid:
    return DatasetInvalid(
        issues=[DataIssue("unknown_format", message, path.name, expected=expected)]
    )


def read_lines(path: Path, name: str, issues: Issues) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a UTF-8 file with their 1-based numbers; bad bytes are reported."""
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                issues.add(
                    "bad_encoding",
                    f"byte {raw[e.start]:#x} is not UTF-8",
                    file=name,
                    line=number,
                    expected="UTF-8 text",
                )
                continue
            line = line.removeprefix("\ufeff") if number == 1 else line
            if line.strip():
                yield number, line


def read_text(path: Path, name: str, issues: Issues) -> str | None:
    """The whole file as text, or None after reporting where it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        issues.add(
            "bad_encoding",
            f"byte {data[e.start]:#x} is not UTF-8",
            file=name,
            line=data.count(b"\n", 0, e.start) + 1,
            expected="UTF-8 text",
        )
        return None


DEEPER = object()  # a record the JSON parser could not take: nested too deeply


def read_jsonl(path: Path, name: str, issues: Issues) -> Iterator[Record]:
    for number, line in read_lines(path, name, issues):
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            issues.add(
                "bad_json",
                f"invalid JSON: {e.msg} (column {e.colno})",
                file=name,
                line=number,
                expected="one JSON object per line",
            )
            continue
        except RecursionError:  # nested past what the parser takes
            data = DEEPER
        if data is DEEPER or too_deep(data):
            issues.add(
                "too_deep",
                f"the record nests deeper than {MAX_DEPTH} levels",
                file=name,
                line=number,
                expected="a flat JSON object",
            )
            continue
        if not isinstance(data, dict):
            issues.add(
                "bad_json",
                f"line is a JSON {type(data).__name__}",
                file=name,
                line=number,
                expected="one JSON object per line",
            )
            continue
        yield Record(data, name, number, issues)


def read_table(path: Path, name: str, issues: Issues) -> Iterator[Record]:
    """Rows of a CSV/TSV file with a header; a record's line is where it starts."""
    text = read_text(path, name, issues)
    if text is None:
        return
    csv.field_size_limit(2**31 - 1)  # long documents are legitimate cells
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=TABLE_SUFFIXES[path.suffix])
    header: list[str] | None = None
    start = 1
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
            elif len(row) != len(header):
                issues.add(
                    "bad_csv",
                    f"row has {len(row)} values, the header {len(header)}",
                    file=name,
                    line=number,
                    expected=f"{len(header)} values",
                )
            else:
                yield Record(dict(zip(header, row, strict=True)), name, number, issues)
    except csv.Error as e:
        issues.add("bad_csv", str(e), file=name, line=start, expected="well-formed CSV")


def read_records(path: Path, issues: Issues) -> Iterator[Record]:
    """Records of a .jsonl, .csv or .tsv file, chosen by suffix."""
    if not path.is_file():
        raise missing_file(path, "a .jsonl, .csv or .tsv file")
    if path.suffix == ".jsonl":
        return read_jsonl(path, path.name, issues)
    if path.suffix in TABLE_SUFFIXES:
        return read_table(path, path.name, issues)
    raise unknown_format(path, f"cannot read '{path.suffix}' files", "a .jsonl, .csv or .tsv file")


def record_shape(data: dict[str, object]) -> str | None:
    """The format a record's keys belong to, or None."""
    return next((fmt for fmt, keys in SHAPES if all(k in data for k in keys)), None)


def read_shaped(path: Path, issues: Issues) -> Iterator[Record]:
    """Records of one shape; a record whose keys match another format is a ``mixed_formats``."""
    first: tuple[str, int] | None = None  # (shape, line) of the first recognisable record
    for record in read_records(path, issues):
        shape = record_shape(record.data)
        if shape and first and shape != first[0]:
            record.problem(
                "mixed_formats",
                f"record has {shape} fields",
                expected=f"{first[0]} records like line {first[1]}",
            )
            continue
        if shape and not first:
            first = (shape, record.line)
        yield record


def write_jsonl(path: Path, rows: Sequence[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_records(path: Path, rows: Sequence[dict[str, object]], columns: Sequence[str]) -> None:
    """Write rows as JSON lines or as a CSV/TSV table with ``columns``, by suffix."""
    if not rows:
        raise InvalidInput(f"nothing to write to {path.name}", code="empty_dataset")
    if path.suffix == ".jsonl":
        write_jsonl(path, rows)
    elif path.suffix in TABLE_SUFFIXES:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8", newline="") as f:
            writer = csv.DictWriter(f, columns, delimiter=TABLE_SUFFIXES[path.suffix])
            writer.writeheader()
            writer.writerows(rows)
    else:
        raise InvalidInput(
            f"cannot write '{path.suffix}' files; use .jsonl, .csv or .tsv",
            code="unknown_format",
            param="path",
        )

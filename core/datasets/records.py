"""Line-oriented records (JSON lines, CSV, TSV): reading with located issues, and writing."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

from core.datasets.options import ReadOptions, find_key, rename_columns
from core.datasets.validate import Issues
from core.errors import DataIssue, DatasetInvalid, InvalidInput
from core.safe_values import MAX_DEPTH, too_deep

TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
RECORD_SUFFIXES = (".jsonl", *TABLE_SUFFIXES)
DROP_HINT = "read with --drop-empty (drop_empty=true) to drop empty texts"


@dataclass
class Record:
    """One record and where it came from; its getters report problems to ``issues``.

    Every key a getter reads is remembered in ``used``, so that unread columns can be reported.
    With ``drop_empty`` an empty text marks the record ``dropped`` instead of failing the file.
    """

    data: dict[str, object]
    file: str
    line: int
    issues: Issues
    failed: bool = False
    drop_empty: bool = False
    dropped: bool = False
    used: set[str] = field(default_factory=set)

    def problem(
        self, code: str, message: str, *, key: str | None = None, expected: str | None = None
    ) -> None:
        self.failed = True
        self.issues.add(code, message, file=self.file, line=self.line, field=key, expected=expected)

    def key(self, name: str) -> str:
        """The key that holds field ``name`` here (an alias if present), else ``name``."""
        return find_key(self.data, name) or name

    def empty(self, where: str, key: str) -> None:
        if self.drop_empty:
            self.failed = self.dropped = True
        else:
            self.problem(
                "empty_text",
                f"'{where}' is empty ({DROP_HINT})",
                key=key,
                expected="a non-empty text",
            )

    def text(self, key: str, *, required: bool = True) -> str | None:
        """A non-empty string; an optional field that is absent, null or "" gives None."""
        self.used.add(key)
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
            self.empty(key, key)
            return None
        return value

    def texts(self, key: str, *, required: bool = True, single: bool = False) -> list[str]:
        """A list of non-empty strings (or one string, with ``single``); absent optional: []."""
        value = self.data.get(key)
        if single and (isinstance(value, str) or value is None):
            text = self.text(key, required=required)
            return [text] if text is not None else []
        if single and required and value == []:
            self.problem("bad_type", f"'{key}' is empty", key=key, expected="at least one text")
        self.used.add(key)
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
                self.empty(f"{key}[{i}]", key)
        return value

    def ident(self, key: str) -> str | None:
        """A non-empty string id (integers are accepted and turned into strings)."""
        self.used.add(key)
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
        self.used.add(key)
        if key not in self.data or self.data[key] in (None, ""):
            self.problem("missing_field", f"'{key}' is missing", key=key, expected="a number")
            return None
        return self._number(self.data[key], key)

    def scores(self, key: str, count: int) -> list[float] | None:
        """An optional list of ``count`` finite numbers."""
        self.used.add(key)
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

    def label(self, key: str) -> int | None:
        """A 0/1 label (``1``, ``"1"``, ``1.0``…); anything else is reported, never guessed."""
        number = self.score(key)
        if number is None or number in (0, 1):
            return None if number is None else int(number)
        self.problem(
            "bad_label",
            f"'{key}' is {self.data[key]!r}: a pair label must be 0 (negative) or 1 (positive); "
            "for graded similarity name the column score (scored-pairs), e.g. --columns "
            f"score={key}",
            key=key,
            expected="0 or 1",
        )
        return None

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


def read_table(path: Path, name: str, issues: Issues, *, quotes: bool = True) -> Iterator[Record]:
    """Rows of a CSV/TSV file with a header; a record's line is where it starts.

    Without ``quotes`` a quote character is text (no CSV quoting). A record that spans several
    lines (a quoted line break, or an unclosed quote) is reported as a warning naming its lines,
    since a line-based reader would count other records.
    """
    text = read_text(path, name, issues)
    if text is None:
        return
    csv.field_size_limit(2**31 - 1)  # long documents are legitimate cells
    quoting = csv.QUOTE_MINIMAL if quotes else csv.QUOTE_NONE
    reader = csv.reader(
        io.StringIO(text, newline=""), delimiter=TABLE_SUFFIXES[path.suffix], quoting=quoting
    )
    header: list[str] | None = None
    start = 1
    spans: list[str] = []
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if reader.line_num > number:
                spans.append(f"{number}-{reader.line_num}")
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
    if spans:
        issues.warn(
            "multiline_records",
            f"{len(spans)} records span several lines (quoted line breaks or an unclosed quote), "
            f"so the file has fewer records than lines: lines {', '.join(spans[:10])}"
            + (" …" if len(spans) > 10 else ""),
            file=name,
            line=int(spans[0].split("-")[0]),
        )


def read_records(
    path: Path, issues: Issues, options: ReadOptions | None = None
) -> Iterator[Record]:
    """Records of a .jsonl, .csv or .tsv file, chosen by suffix, with ``options.columns``
    renamed to their fields."""
    options = options or ReadOptions()
    if not path.is_file():
        raise missing_file(path, "a .jsonl, .csv or .tsv file")
    if path.suffix == ".jsonl":
        records = read_jsonl(path, path.name, issues)
    elif path.suffix in TABLE_SUFFIXES:
        quotes = path.suffix == ".csv" or options.tsv_quotes
        records = read_table(path, path.name, issues, quotes=quotes)
    else:
        raise unknown_format(
            path, f"cannot read '{path.suffix}' files", "a .jsonl, .csv or .tsv file"
        )
    for record in records:
        record.data = rename_columns(record.data, options.columns)
        record.drop_empty = options.drop_empty
        yield record


def record_shape(data: dict[str, object]) -> str | None:
    """The format a record's fields belong to (aliases included), or None."""
    if "sentence1" in data and "sentence2" in data and "score" in data:
        return "scored-pairs"
    if "query" in data and "pos" in data:
        return "flag-jsonl"
    if find_key(data, "query") and find_key(data, "positive"):
        return "pairs"
    return None


def read_shaped(path: Path, issues: Issues, options: ReadOptions | None = None) -> Iterator[Record]:
    """Records of one shape; a record whose keys match another format is a ``mixed_formats``."""
    first: tuple[str, int] | None = None  # (shape, line) of the first recognisable record
    for record in read_records(path, issues, options):
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

"""Readers of raw documents: one function per file type, each returning the file's documents
(id, title, text, page spans) or raising ``Skipped`` with a reason code for that file only.

Libraries: pypdf (pure Python, the maintained successor of PyPDF2) for PDF text layers and
encryption flags; python-docx for Word paragraphs and the core ``title`` property;
beautifulsoup4 with the standard-library ``html.parser`` (no compiled parser needed) for
HTML text. Plain text and Markdown are read as they are, so character offsets point into
the file itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".jsonl")
_HEADING = re.compile(r"^#\s+(.+?)\s*#*\s*$", re.MULTILINE)


class Skipped(Exception):
    """This file (or record) gives no document; ``code`` says why, for the ingest report."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class SourceDocument:
    """One document's text as read. ``pages`` holds ``(page number, start, end)`` character
    spans of ``text`` for paged formats (PDF), so a chunk can name the pages it came from."""

    id: str
    text: str
    source: str
    title: str = ""
    pages: tuple[tuple[int, int, int], ...] = field(default=())

    def pages_of(self, start: int, end: int) -> list[int]:
        """The page numbers that the character span ``[start, end)`` touches."""
        return [n for n, s, e in self.pages if s < end and start < e]


def read_text_file(path: Path, source: str) -> str:
    """The file's text: UTF-8 (a BOM is allowed); anything else is ``undecodable``."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise Skipped(
            "undecodable", f"not UTF-8 text (byte {exc.start}: {data[exc.start : exc.start + 1]!r})"
        ) from None


def _plain(path: Path, source: str) -> list[SourceDocument]:
    return [SourceDocument(source, read_text_file(path, source), source)]


def _markdown(path: Path, source: str) -> list[SourceDocument]:
    text = read_text_file(path, source)
    heading = _HEADING.search(text)
    return [SourceDocument(source, text, source, title=heading.group(1) if heading else "")]


def _html(path: Path, source: str) -> list[SourceDocument]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(read_text_file(path, source), "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(["script", "style", "noscript", "template", "head"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    return [SourceDocument(source, text, source, title=title)]


def _pdf(path: Path, source: str) -> list[SourceDocument]:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted:
            raise Skipped("encrypted_pdf", "the PDF is encrypted; upload a decrypted copy")
        texts = [(page.extract_text() or "").strip() for page in reader.pages]
        title = str((reader.metadata or {}).get("/Title") or "").strip()
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise Skipped("bad_pdf", f"not a readable PDF: {exc}") from None
    if not any(texts):
        raise Skipped(
            "no_text_layer",
            f"none of the {len(texts)} pages has a text layer (scanned images?); run OCR first",
        )
    parts: list[str] = []
    pages: list[tuple[int, int, int]] = []
    offset = 0
    for number, text in enumerate(texts, start=1):
        if parts:
            offset += 2  # the "\n\n" between pages
        pages.append((number, offset, offset + len(text)))
        parts.append(text)
        offset += len(text)
    return [SourceDocument(source, "\n\n".join(parts), source, title=title, pages=tuple(pages))]


def _docx(path: Path, source: str) -> list[SourceDocument]:
    import zipfile

    from docx import Document as open_docx
    from docx.opc.exceptions import PackageNotFoundError

    try:
        doc = open_docx(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise Skipped("bad_docx", f"not a readable .docx file: {exc}") from None
    paragraphs = [p.text.strip() for p in doc.paragraphs]
    title = (doc.core_properties.title or "").strip()
    if not title:
        title = next(
            (p.text.strip() for p in doc.paragraphs if p.style.name.startswith(("Title", "Head"))),
            "",
        )
    return [SourceDocument(source, "\n\n".join(p for p in paragraphs if p), source, title=title)]


def _jsonl(path: Path, source: str) -> list[SourceDocument]:
    """``{"id" (or BEIR "_id"), "text", "title"?}`` per line; a bad line skips the file."""
    docs: list[SourceDocument] = []
    for number, line in enumerate(read_text_file(path, source).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise Skipped("bad_json", f"line {number}: invalid JSON ({exc.msg})") from None
        doc_id = record.get("id", record.get("_id")) if isinstance(record, dict) else None
        text, title = (record.get("text"), record.get("title") or "") if doc_id else (None, "")
        if not isinstance(doc_id, str | int) or not isinstance(text, str):
            raise Skipped(
                "bad_record", f"line {number}: expected {{id, text, title?}} with string text"
            )
        docs.append(SourceDocument(str(doc_id), text, source, title=str(title)))
    return docs


READERS: dict[str, Callable[[Path, str], list[SourceDocument]]] = {
    ".txt": _plain,
    ".md": _markdown,
    ".markdown": _markdown,
    ".html": _html,
    ".htm": _html,
    ".pdf": _pdf,
    ".docx": _docx,
    ".jsonl": _jsonl,
}


def read_documents(path: Path, source: str) -> list[SourceDocument]:
    """The documents of one file, or ``Skipped`` (unsupported type, empty, unreadable)."""
    reader = READERS.get(path.suffix.lower())
    if reader is None:
        raise Skipped(
            "unsupported_type",
            f"'{path.suffix or path.name}' files are not read ({', '.join(SUFFIXES)})",
        )
    if path.stat().st_size == 0:
        raise Skipped("empty", "the file is empty")
    try:
        return reader(path, source)
    except Skipped:
        raise
    except Exception as exc:  # a parser's own failure on a hostile file skips that file only
        raise Skipped("unreadable", f"the file could not be read ({type(exc).__name__})") from None

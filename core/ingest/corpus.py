"""Raw documents in, a chunked corpus out: read every file, chunk, store identical chunks once,
and report what was read and what was skipped (with the reason), file by file."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.model import Document, RetrievalDataset
from core.ingest.chunking import Chunker, Span
from core.ingest.readers import Skipped, SourceDocument, read_documents
from core.ingest.report import IngestReport, SkippedFile

Progress = Callable[[int, int], None]


@dataclass
class IngestResult:
    """The chunks as a corpus-only dataset (provenance in each document's ``metadata``) and
    the report."""

    dataset: RetrievalDataset
    report: IngestReport


@dataclass
class _Collector:
    chunker: Chunker
    corpus: dict[str, Document] = field(default_factory=dict)
    by_text: dict[str, str] = field(default_factory=dict)  # text digest -> chunk id
    doc_ids: set[str] = field(default_factory=set)
    report: IngestReport = field(default_factory=IngestReport)

    def add(self, doc: SourceDocument) -> None:
        if doc.id in self.doc_ids:
            raise Skipped("duplicate_id", f"document id '{doc.id}' was already read")
        if not doc.text.strip():
            raise Skipped("empty", f"document '{doc.id}' has no text")
        self.doc_ids.add(doc.id)
        title = doc.title if self.chunker.title_fits(doc.title) else ""
        spans = self.chunker.split(doc.text, title)
        self.report.documents += 1
        self.report.pages += len(doc.pages) or 1
        for index, span in enumerate(spans):
            self._keep(doc, index, span, title)

    def _keep(self, doc: SourceDocument, index: int, span: Span, title: str) -> None:
        where: dict[str, Any] = {
            "source": doc.source,
            "doc_id": doc.id,
            "chunk": index,
            "start": span.start,
            "end": span.end,
        }
        if doc.pages:
            where["pages"] = doc.pages_of(span.start, span.end)
        if doc.title and not title:
            where["title"] = doc.title  # too long to repeat in each chunk; kept here
        digest = hashlib.sha256(f"{title}\0{span.text}".encode()).hexdigest()
        if (first := self.by_text.get(digest)) is not None:
            self.corpus[first].metadata.setdefault("also_in", []).append(where)
            self.report.duplicate_chunks += 1
            return
        chunk_id = f"{doc.id}#{index}"
        self.by_text[digest] = chunk_id
        self.corpus[chunk_id] = Document(chunk_id, span.text, title, where)
        self.report.token_counts.append(span.tokens)


def ingest_files(
    files: Iterable[tuple[Path, str]],
    chunker: Chunker,
    *,
    name: str = "documents",
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest ``(path, source name)`` pairs; a file that cannot be read is skipped with its
    reason and never stops the others."""
    todo = list(files)
    collector = _Collector(chunker)
    report = collector.report
    report.token_limit = chunker.limit
    for done, (path, source) in enumerate(todo, start=1):
        report.files += 1
        try:
            docs = read_documents(path, source)
            if not docs:
                raise Skipped("empty", "the file holds no documents")
        except Skipped as skip:
            report.skipped.append(SkippedFile(source, skip.code, skip.message))
            docs = []
        for doc in docs:
            try:
                collector.add(doc)
            except Skipped as skip:
                label = source if len(docs) == 1 else f"{source}#{doc.id}"
                report.skipped.append(SkippedFile(label, skip.code, skip.message))
        if progress:
            progress(done, len(todo))
    report.chunks = len(collector.corpus)
    ds = RetrievalDataset(collector.corpus, {}, name=name, source_format="beir")
    return IngestResult(ds, report)


def files_under(root: Path) -> list[tuple[Path, str]]:
    """Every regular file under ``root`` (hidden ones left out), with its relative name."""
    if root.is_file():
        return [(root, root.name)]
    return [
        (path, path.relative_to(root).as_posix())
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(p.startswith(".") for p in path.relative_to(root).parts)
    ]

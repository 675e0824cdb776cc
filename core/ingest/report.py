"""What an ingest read: files, documents, pages, chunks, tokens per chunk, skipped files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

PERCENTILES = (0, 50, 90, 99, 100)


@dataclass(frozen=True)
class SkippedFile:
    """A file (or one record of a file) that gave no chunk, and why (``code``)."""

    file: str
    code: str
    message: str


@dataclass
class IngestReport:
    files: int = 0
    documents: int = 0
    pages: int = 0
    chunks: int = 0
    duplicate_chunks: int = 0
    token_limit: int = 0
    token_counts: list[int] = field(default_factory=list, repr=False)
    skipped: list[SkippedFile] = field(default_factory=list)

    def token_percentiles(self) -> dict[str, int]:
        if not self.token_counts:
            return {}
        values = np.percentile(np.asarray(self.token_counts), PERCENTILES, method="nearest")
        return {f"p{p}": int(v) for p, v in zip(PERCENTILES, values, strict=True)}

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "documents": self.documents,
            "pages": self.pages,
            "chunks": self.chunks,
            "duplicate_chunks": self.duplicate_chunks,
            "token_limit": self.token_limit,
            "tokens_per_chunk": self.token_percentiles(),
            "skipped": [s.__dict__ for s in self.skipped],
        }

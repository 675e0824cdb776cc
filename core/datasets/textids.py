"""Datasets from formats that carry texts without ids: equal texts get equal, stable ids."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.datasets.records import Record, read_shaped
from core.datasets.validate import Issues


def text_id(prefix: str, text: str) -> str:
    """``prefix`` + the first 16 hex digits of the text's SHA-1, e.g. ``d-3f2a...``."""
    return prefix + hashlib.sha1(text.encode("utf-8"), usedforsecurity=False).hexdigest()[:16]


class TextDatasetBuilder:
    """Accumulates queries, documents, judgments, negatives and scores given as raw texts."""

    def __init__(self, split: str = "train") -> None:
        self.split = split
        self.corpus: dict[str, Document] = {}
        self.queries: dict[str, Query] = {}
        self.qrels: Qrels = {}
        self.negatives: dict[str, list[str]] = {}
        self.scores: dict[str, dict[str, float]] = {}

    def query(self, text: str, *, instruction: str | None = None) -> str:
        """The id of the query with this text; the first instruction seen for it is kept."""
        qid = text_id("q-", text)
        self.queries.setdefault(qid, Query(qid, text, instruction=instruction))
        return qid

    def doc(self, text: str) -> str:
        did = text_id("d-", text)
        self.corpus.setdefault(did, Document(did, text))
        return did

    def relevant(self, qid: str, did: str) -> None:
        self.qrels.setdefault(qid, {})[did] = 1

    def negative(self, qid: str, did: str) -> None:
        negatives = self.negatives.setdefault(qid, [])
        if did not in negatives:
            negatives.append(did)

    def score(self, qid: str, did: str, value: float) -> None:
        self.scores.setdefault(qid, {})[did] = value

    def build(self, *, name: str, source_format: str) -> RetrievalDataset:
        return RetrievalDataset(
            corpus=self.corpus,
            queries=self.queries,
            qrels={self.split: self.qrels} if self.qrels else {},
            negatives=self.negatives,
            scores=self.scores,
            name=name,
            source_format=source_format,
        )


def read_text_dataset(
    path: Path, *, split: str, fmt: str, add: Callable[[TextDatasetBuilder, Record], None]
) -> RetrievalDataset:
    """Read a line-oriented file, feeding each record to ``add``; raise every issue found."""
    issues = Issues()
    builder = TextDatasetBuilder(split)
    for record in read_shaped(path, issues):
        add(builder, record)
    if not builder.queries and not issues:
        issues.add("empty_dataset", "the file has no records", file=path.name)
    issues.raise_if_any()
    return builder.build(name=path.stem, source_format=fmt)

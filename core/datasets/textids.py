"""Datasets from formats that carry texts without ids: equal texts get equal, stable ids."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.datasets.options import ReadOptions
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

    def query(self, text: str, *, instruction: str | None = None, qid: str | None = None) -> str:
        """The id of the query with this text (or the given ``qid``); the first instruction
        seen for it is kept."""
        qid = qid or text_id("q-", text)
        self.queries.setdefault(qid, Query(qid, text, instruction=instruction))
        return qid

    def new_query(self, text: str, *, instruction: str | None = None) -> str:
        """A query of its own even when an earlier one has the same text (``q-…-2``, ``-3``…)."""
        base = text_id("q-", text)
        qid, n = base, 1
        while qid in self.queries:
            n += 1
            qid = f"{base}-{n}"
        return self.query(text, instruction=instruction, qid=qid)

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
    path: Path,
    *,
    split: str,
    fmt: str,
    add: Callable[[TextDatasetBuilder, Record], None],
    options: ReadOptions | None = None,
) -> RetrievalDataset:
    """Read a line-oriented file, feeding each record to ``add``; raise every issue found.

    Columns no reader looked at and records dropped for an empty text become warnings.
    """
    issues = Issues()
    builder = TextDatasetBuilder(split)
    unused: Counter[str] = Counter()
    dropped: list[int] = []
    for record in read_shaped(path, issues, options):
        add(builder, record)
        unused.update(key for key in record.data if key not in record.used)
        if record.dropped:
            dropped.append(record.line)
    if not builder.queries and not issues:
        issues.add("empty_dataset", "the file has no records", file=path.name)
    issues.raise_if_any()
    issues.warn_unused(unused, file=path.name)
    if dropped:
        issues.warn(
            "dropped_empty",
            f"dropped {len(dropped)} records with an empty text (lines "
            f"{', '.join(map(str, dropped[:10]))}{' …' if len(dropped) > 10 else ''})",
            file=path.name,
        )
    ds = builder.build(name=path.stem, source_format=fmt)
    ds.warnings = issues.warnings
    return ds

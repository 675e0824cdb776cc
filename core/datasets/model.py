"""The one in-memory representation of a retrieval dataset, whatever format it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.errors import DataIssue, NotFound

Qrels = dict[str, dict[str, int]]
"""query id -> {doc id: relevance grade (> 0 is relevant)}."""


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str = ""
    metadata: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    """Provenance kept with the text (BEIR ``metadata``): for ingested chunks the source
    file, document id, chunk index and character offsets."""

    @property
    def full_text(self) -> str:
        """Title and body joined as BEIR and MTEB encode them."""
        return f"{self.title} {self.text}".strip() if self.title else self.text


@dataclass(frozen=True)
class Query:
    id: str
    text: str
    instruction: str | None = None  # per-example prompt (FlagEmbedding ``prompt``)
    answer: str | None = None  # reference answer (RAG JSON ``reference_answers``)


@dataclass
class RetrievalDataset:
    """Corpus, queries, relevance judgments per split and optional negatives / scores.

    ``scores`` holds graded similarities that are not relevance judgments: the ``score`` of
    scored pairs and FlagEmbedding ``pos_scores`` / ``neg_scores`` (query id -> doc id -> score).
    """

    corpus: dict[str, Document]
    queries: dict[str, Query]
    qrels: dict[str, Qrels] = field(default_factory=dict)
    negatives: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, dict[str, float]] = field(default_factory=dict)
    name: str = ""
    source_format: str = ""
    warnings: list[DataIssue] = field(default_factory=list, compare=False)
    """What reading left out or read in a particular way (unused columns, dropped rows)."""

    @property
    def splits(self) -> list[str]:
        return sorted(self.qrels)

    def split_qrels(self, split: str) -> Qrels:
        """Judgments of one split; raises ``NotFound`` naming the splits that exist."""
        if split not in self.qrels:
            have = ", ".join(self.splits) or "none"
            raise NotFound(f"dataset has no split '{split}' (splits: {have})", param="split")
        return self.qrels[split]

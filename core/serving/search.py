"""An index ready to answer queries with documents: ids, scores and text (a faiss index of
dense vectors, or a MaxSim token index of a late-interaction model)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from core.datasets.model import Document
from core.indexing.faiss_index import VectorIndex
from core.indexing.token_index import TokenIndex
from core.serving.spec import ModelKey


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    title: str
    text: str


@dataclass(frozen=True)
class ServedIndex:
    """An index, the documents it was built from, and the model that must encode queries."""

    index: VectorIndex | TokenIndex
    docs: dict[str, Document]
    model: ModelKey
    fingerprint: str  # of the model the index was built with

    @property
    def multi_vector(self) -> bool:
        """Whether queries are token vectors scored by MaxSim."""
        return isinstance(self.index, TokenIndex)

    @cached_property
    def nbytes(self) -> int:
        texts = sum(len(d.text) + len(d.title) for d in self.docs.values())
        if isinstance(self.index, TokenIndex):
            return self.index.nbytes + texts
        return len(self.index) * self.index.dim * 4 + texts

    def search(self, vectors: np.ndarray | list[np.ndarray], top_k: int) -> list[list[Hit]]:
        ids, scores = self.index.search(vectors, top_k)
        return [
            [
                self._hit(doc_id, float(score))
                for doc_id, score in zip(row, row_scores, strict=False)
            ]
            for row, row_scores in zip(ids, scores, strict=True)
        ]

    def _hit(self, doc_id: str, score: float) -> Hit:
        doc = self.docs[doc_id]
        return Hit(doc_id, score, doc.title, doc.text)

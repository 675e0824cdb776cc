"""Opening a saved index of either family by the kind it was recorded with."""

from __future__ import annotations

from pathlib import Path

from core.indexing.faiss_index import VectorIndex
from core.indexing.token_index import KIND as TOKEN_KIND
from core.indexing.token_index import TokenIndex


def open_index(path: str | Path, kind: str) -> VectorIndex | TokenIndex:
    """A Faiss index, or a MaxSim token index when ``kind`` is the token kind."""
    return TokenIndex.load(path) if kind == TOKEN_KIND else VectorIndex.load(path)

"""A late-interaction (ColBERT) index: every document's token vectors, scored by MaxSim.

The vectors of all documents lie packed in one float16 matrix (no padding), with the row
where each document starts; a query's score for a document is the sum, over the query's
tokens, of the best inner product with any of the document's tokens (MaxSim). Search is
exact: one matrix product per chunk of the corpus, then a maximum per document segment; for
the corpora EmbedTune evaluates on (SciFact: 5k documents, 0.8M tokens) this is faster to
build than an approximate index and gives PyLate's scores exactly (see the test that checks
it against ``pylate.scores.colbert_scores``).

Memory is what a token index costs: ``bytes_per_document`` is the mean real tokens per
document times ``dim * 2`` bytes (plus 8 for its offset); ``check_budget`` refuses an index
that would not fit the configured budget before any document is encoded.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from core.errors import InvalidInput, NotFound, TooLarge

TOKENS_FILE, OFFSETS_FILE, IDS_FILE = "tokens.npy", "offsets.npy", "ids.json"
KIND = "maxsim"
CHUNK_TOKENS = 1 << 15  # corpus tokens per matrix product
QUERY_TOKENS = 1 << 10  # query tokens per matrix product: 1024 x 32k x 4 bytes = 128 MiB
Progress = Callable[[int, int], None]


def estimate_bytes(token_counts: Sequence[int], dim: int) -> int:
    """Bytes a token index of documents with ``token_counts`` tokens of ``dim`` takes."""
    return int(sum(token_counts)) * dim * 2 + (len(token_counts) + 1) * 8


def check_budget(token_counts: Sequence[int], dim: int, budget_bytes: int) -> int:
    """The estimated size; ``TooLarge`` (``index_too_large``) when over ``budget_bytes``."""
    need = estimate_bytes(token_counts, dim)
    if need > budget_bytes:
        per_doc = need / max(len(token_counts), 1)
        raise TooLarge(
            f"a token index of {len(token_counts)} documents needs {need / 2**20:.0f} MiB "
            f"({per_doc:.0f} bytes per document: {dim} dims x float16 per token) but the "
            f"budget is {budget_bytes / 2**20:.0f} MiB (setting late_index_memory_mb); "
            "shorten document_length, or raise the budget",
            code="index_too_large",
            param="dataset_id",
        )
    return need


class TokenIndex:
    """Documents' token vectors, packed, with each document's id; scores are MaxSim."""

    def __init__(self, tokens: np.ndarray, offsets: np.ndarray, ids: list[str]) -> None:
        self.tokens = tokens  # (total tokens, dim) float16, L2-normalized rows
        self.offsets = offsets  # (n + 1,) int64: document i is rows offsets[i]:offsets[i+1]
        self.ids = ids

    @classmethod
    def build(
        cls, documents: Sequence[np.ndarray], ids: list[str], progress: Progress | None = None
    ) -> TokenIndex:
        """Pack ``documents`` (row i of the list is doc ``ids[i]``: a (tokens, dim) matrix);
        all-zero rows (padding) are dropped."""
        if len(documents) == 0 or len(documents) != len(ids):
            msg = f"need one id per document, got {len(documents)} documents and {len(ids)} ids"
            raise InvalidInput(msg, param="ids")
        if len(set(ids)) != len(ids):
            raise InvalidInput("doc ids must be unique", param="ids")
        kept = [_real_rows(np.asarray(d, dtype=np.float32)) for d in documents]
        if any(len(k) == 0 for k in kept):
            raise InvalidInput("every document needs at least one token vector", param="ids")
        lengths = np.array([len(k) for k in kept], dtype=np.int64)
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tokens = np.concatenate(kept).astype(np.float16)
        if progress is not None:
            progress(len(ids), len(ids))
        return cls(tokens, offsets, list(ids))

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dim(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def nbytes(self) -> int:
        return int(self.tokens.nbytes + self.offsets.nbytes)

    @property
    def bytes_per_document(self) -> float:
        return self.nbytes / max(len(self), 1)

    def scores(self, queries: Sequence[np.ndarray]) -> np.ndarray:
        """(n_queries, n_documents) MaxSim scores of ``queries`` (each a (tokens, dim)
        matrix; all-zero rows are padding and left out)."""
        query_rows = [_real_rows(np.asarray(q, dtype=np.float32)) for q in queries]
        if any(q.shape[1] != self.dim or len(q) == 0 for q in query_rows):
            msg = f"every query needs token vectors of {self.dim} dims"
            raise InvalidInput(msg, param="queries")
        out = np.empty((len(query_rows), len(self)), np.float32)
        for first_q, last_q in _batches([len(q) for q in query_rows], QUERY_TOKENS):
            batch = query_rows[first_q:last_q]
            flat = np.concatenate(batch)
            starts = np.concatenate([[0], np.cumsum([len(q) for q in batch])[:-1]])
            for first, last in _doc_chunks(self.offsets, CHUNK_TOKENS):
                lo, hi = self.offsets[first], self.offsets[last]
                sims = flat @ self.tokens[lo:hi].astype(np.float32).T  # query x doc tokens
                best = np.maximum.reduceat(sims, self.offsets[first:last] - lo, axis=1)
                out[first_q:last_q, first:last] = np.add.reduceat(best, starts, axis=0)
        return out

    def search(self, queries: Sequence[np.ndarray], k: int) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` doc ids per query (``k`` capped at the index size) and their scores."""
        if k < 1:
            raise InvalidInput("k must be >= 1", param="k")
        k = min(k, len(self))
        scores = self.scores(queries)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        top = np.take_along_axis(top, order, axis=1)
        hits = [[self.ids[j] for j in row] for row in top.tolist()]
        return hits, np.take_along_axis(top_scores, order, axis=1)

    def save(self, directory: str | Path) -> None:
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path / TOKENS_FILE, self.tokens)
        np.save(path / OFFSETS_FILE, self.offsets)
        (path / IDS_FILE).write_text(json.dumps(self.ids))

    @classmethod
    def load(cls, directory: str | Path) -> TokenIndex:
        path = Path(directory)
        missing = [f for f in (TOKENS_FILE, OFFSETS_FILE, IDS_FILE) if not (path / f).is_file()]
        if missing:
            msg = f"no saved token index in {path} (missing {', '.join(missing)})"
            raise NotFound(msg, param="directory")
        ids = json.loads((path / IDS_FILE).read_text())
        offsets = np.load(path / OFFSETS_FILE)
        if len(offsets) != len(ids) + 1:
            raise InvalidInput(f"{path} holds {len(offsets) - 1} documents but {len(ids)} ids")
        return cls(np.load(path / TOKENS_FILE), offsets, ids)


def _real_rows(matrix: np.ndarray) -> np.ndarray:
    """The rows of ``matrix`` that are not all zero (padding)."""
    if matrix.ndim != 2:
        raise InvalidInput(f"token vectors must be a matrix, got shape {matrix.shape}")
    return matrix[np.any(matrix != 0, axis=1)]


def _batches(lengths: list[int], tokens: int) -> list[tuple[int, int]]:
    """Query ranges ``[first, last)`` of at most ``tokens`` tokens each (at least one query)."""
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return _doc_chunks(offsets, tokens)


def _doc_chunks(offsets: np.ndarray, tokens: int) -> list[tuple[int, int]]:
    """Document ranges ``[first, last)`` of about ``tokens`` tokens each (at least one doc)."""
    chunks, first, n = [], 0, len(offsets) - 1
    while first < n:
        last = int(np.searchsorted(offsets, offsets[first] + tokens, side="right")) - 1
        last = min(max(last, first + 1), n)
        chunks.append((first, last))
        first = last
    return chunks

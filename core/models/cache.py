"""On-disk embedding cache: encode a text once per (model, instruction, max length, normalization).

Layout: ``<root>/<key>/`` holds shards ``<n>.npy`` (float32 vectors, or float16 with
``dtype="float16"``; late-interaction models' token matrices are always float16) beside
``<n>.keys.npy`` (the 20-byte sha1 digests of the texts, as uint8 rows). A lookup encodes only
the texts no shard holds and writes them as new shards, atomically, so concurrent writers never
collide. Shards are read memory-mapped, row by row into the caller's array, which may itself be
a memory-mapped file (``out``): no process needs the whole corpus in RAM.
:meth:`EmbeddingCache.fill` encodes a slice of a corpus in chunks, one shard each, so a rerun
after a crash starts at the first chunk not yet written.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

Dtype = Literal["float32", "float16"]
Allocate = Callable[[int, int], np.ndarray]
"""Returns the (n, dim) float32 array a lookup writes into (``np.empty``, a ``np.memmap``…)."""


@dataclass(frozen=True)
class CacheKey:
    model_fingerprint: str
    instruction: str
    max_seq_length: int
    normalize: bool

    @property
    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class CacheStats:
    hits: int
    misses: int


@dataclass
class EncodeTally:
    """What a cache's lookups encoded: ``corpus_encodes`` counts document-side lookups that
    encoded at least one text (a corpus encoded, whole or in part), ``documents_encoded`` and
    ``queries_encoded`` the texts, ``documents_cached`` the document texts served from disk."""

    corpus_encodes: int = 0
    documents_encoded: int = 0
    documents_cached: int = 0
    query_encodes: int = 0
    queries_encoded: int = 0

    def add(self, side: str | None, stats: CacheStats) -> None:
        if side == "document":
            self.corpus_encodes += stats.misses > 0
            self.documents_encoded += stats.misses
            self.documents_cached += stats.hits
        elif side == "query":
            self.query_encodes += stats.misses > 0
            self.queries_encoded += stats.misses

    def as_metrics(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class _Located:
    """Rows ``rows`` of shard ``path`` are the vectors of texts ``positions``."""

    path: Path
    rows: np.ndarray
    positions: np.ndarray


def text_digest(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors by text digest, one directory per :class:`CacheKey`; new shards in ``dtype``."""

    def __init__(
        self, root: Path, dtype: Dtype = "float32", tally: EncodeTally | None = None
    ) -> None:
        self.root = Path(root)
        self.dtype = np.dtype(dtype)
        self.tally = tally if tally is not None else EncodeTally()

    def get_or_encode(
        self,
        key: CacheKey,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        out: Allocate | None = None,
        side: str | None = None,
    ) -> tuple[np.ndarray, CacheStats]:
        """Vectors for ``texts`` in order; ``encode`` is called once, for the missing texts only.
        ``side`` (query, document) names what the tally counts them as."""
        folder = self.root / key.digest
        where = _positions(texts)
        located = self._locate(folder, where)
        missing = _unlocated(where, located)
        if missing:
            vectors = _stored(encode([texts[where[d][0]] for d in missing]))
            located.append(self._write_shard(folder, key, missing, vectors, where))
        hits = len(where) - len(missing)
        self.tally.add(side, CacheStats(hits, len(missing)))
        if not texts:
            return np.zeros((0, 0), np.float32), CacheStats(hits=0, misses=0)
        return _gather(located, len(texts), out or _empty), CacheStats(hits, len(missing))

    def fill(
        self,
        key: CacheKey,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
        chunk_size: int,
        progress: Callable[[int, int], None] | None = None,
        side: str | None = None,
    ) -> CacheStats:
        """Make sure every text of ``texts`` is cached, encoding ``chunk_size`` at a time (one
        shard per chunk). Nothing is returned but counts, and at most one chunk of vectors is
        held; a rerun encodes only the chunks that did not reach the disk."""
        folder = self.root / key.digest
        where = _positions(texts)
        missing = _unlocated(where, self._locate(folder, where))
        done = len(where) - len(missing)
        for start in range(0, len(missing), chunk_size):
            chunk = missing[start : start + chunk_size]
            vectors = _stored(encode([texts[where[d][0]] for d in chunk]))
            self._write_shard(folder, key, chunk, vectors, where)
            if progress is not None:
                progress(done + start + len(chunk), len(where))
        stats = CacheStats(hits=done, misses=len(missing))
        self.tally.add(side, stats)
        return stats

    def _locate(self, folder: Path, where: dict[bytes, list[int]]) -> list[_Located]:
        """Where each wanted digest is stored (the first shard that has it wins)."""
        seen: set[bytes] = set()
        located = []
        for keys_path in sorted(folder.glob("*.keys.npy")):
            rows, positions = [], []
            for row, digest in enumerate(map(bytes, np.load(keys_path))):
                if digest in where and digest not in seen:
                    seen.add(digest)
                    rows += [row] * len(where[digest])
                    positions += where[digest]
            if rows:
                stem = keys_path.name.removesuffix(".keys.npy")
                path = keys_path.with_name(f"{stem}.npy")
                located.append(_Located(path, np.asarray(rows), np.asarray(positions)))
        return located

    def _write_shard(
        self,
        folder: Path,
        key: CacheKey,
        digests: list[bytes],
        vectors: np.ndarray,
        where: dict[bytes, list[int]],
    ) -> _Located:
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "key.json"
        if not meta.exists():
            meta.write_text(json.dumps(asdict(key), ensure_ascii=False, indent=2), "utf-8")
        name = uuid.uuid4().hex
        # Vectors land first; a shard exists for readers only once its keys file is renamed in.
        dtype = np.float16 if vectors.dtype == np.float16 else self.dtype
        _atomic_save(folder / f"{name}.npy", vectors.astype(dtype, copy=False))
        _atomic_save(
            folder / f"{name}.keys.npy", np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 20)
        )
        rows = [row for row, d in enumerate(digests) for _ in where[d]]
        positions = [p for d in digests for p in where[d]]
        return _Located(folder / f"{name}.npy", np.asarray(rows), np.asarray(positions))


def _positions(texts: Sequence[str]) -> dict[bytes, list[int]]:
    """Each distinct text's digest and the positions it holds in ``texts``."""
    where: dict[bytes, list[int]] = {}
    for i, text in enumerate(texts):
        where.setdefault(text_digest(text), []).append(i)
    return where


def _unlocated(where: dict[bytes, list[int]], located: list[_Located]) -> list[bytes]:
    """The digests of ``where`` that no shard holds, in first-seen order."""
    found = {int(p) for loc in located for p in loc.positions}
    return [d for d, positions in where.items() if positions[0] not in found]


def _empty(n: int, dim: int) -> np.ndarray:
    return np.empty((n, dim), np.float32)


def _gather(located: list[_Located], n: int, allocate: Allocate) -> np.ndarray:
    """The (n, dim) float32 vectors, copied shard by shard from memory-mapped files; token
    matrices (n, tokens, dim) stay float16."""
    first = np.load(located[0].path, mmap_mode="r")
    if first.ndim == 2:
        out = allocate(n, first.shape[1])
    else:
        out = np.empty((n, *first.shape[1:]), first.dtype)
    for loc in located:
        order = np.argsort(loc.rows, kind="stable")  # rows in file order: sequential reads
        shard = np.load(loc.path, mmap_mode="r")
        out[loc.positions[order]] = shard[loc.rows[order]]
    return out


def _stored(vectors: np.ndarray) -> np.ndarray:
    """float32 rows, or float16 as given (token vectors of late-interaction models)."""
    vectors = np.asarray(vectors)
    return vectors if vectors.dtype == np.float16 else vectors.astype(np.float32)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)

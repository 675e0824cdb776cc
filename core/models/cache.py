"""On-disk embedding cache: encode a text once per (model, instruction, max length, normalization).

Layout: ``<root>/<key>/`` holds shards ``<n>.npy`` (float32 vectors, or float16 token matrices
of late-interaction models) beside ``<n>.keys.npy``
(the 20-byte sha1 digests of the texts, as uint8 rows). A lookup encodes only the texts no
shard holds and writes them as one new shard, atomically, so concurrent writers never collide.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np


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


def text_digest(text: str) -> bytes:
    return hashlib.sha1(text.encode("utf-8")).digest()


class EmbeddingCache:
    """Vectors by text digest, one directory per :class:`CacheKey`."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def get_or_encode(
        self,
        key: CacheKey,
        texts: Sequence[str],
        encode: Callable[[list[str]], np.ndarray],
    ) -> tuple[np.ndarray, CacheStats]:
        """Vectors for ``texts`` in order; ``encode`` is called once, for the missing texts only."""
        folder = self.root / key.digest
        digests = [text_digest(t) for t in texts]
        found = self._lookup(folder, set(digests))
        missing = list(dict.fromkeys(d for d in digests if d not in found))
        if missing:
            text_of = dict(zip(digests, texts, strict=True))
            vectors = _stored(encode([text_of[d] for d in missing]))
            self._write_shard(folder, key, missing, vectors)
            found.update(zip(missing, vectors, strict=True))
        out = np.stack([found[d] for d in digests]) if digests else np.zeros((0, 0), np.float32)
        return out, CacheStats(hits=len(set(digests)) - len(missing), misses=len(missing))

    def _lookup(self, folder: Path, wanted: set[bytes]) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for keys_path in sorted(folder.glob("*.keys.npy")):
            keys = [row.tobytes() for row in np.load(keys_path)]
            rows = [i for i, k in enumerate(keys) if k in wanted and k not in found]
            if rows:
                stem = keys_path.name.removesuffix(".keys.npy")
                vectors = np.load(keys_path.with_name(f"{stem}.npy"), mmap_mode="r")
                found.update((keys[i], np.array(vectors[i])) for i in rows)
        return found

    def _write_shard(
        self, folder: Path, key: CacheKey, digests: list[bytes], vectors: np.ndarray
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        meta = folder / "key.json"
        if not meta.exists():
            meta.write_text(json.dumps(asdict(key), ensure_ascii=False, indent=2), "utf-8")
        name = uuid.uuid4().hex
        # Vectors land first; a shard exists for readers only once its keys file is renamed in.
        _atomic_save(folder / f"{name}.npy", vectors)
        _atomic_save(
            folder / f"{name}.keys.npy", np.frombuffer(b"".join(digests), np.uint8).reshape(-1, 20)
        )


def _stored(vectors: np.ndarray) -> np.ndarray:
    """float32 rows, or float16 as given (token vectors of late-interaction models)."""
    vectors = np.asarray(vectors)
    return vectors if vectors.dtype == np.float16 else vectors.astype(np.float32)


def _atomic_save(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with tmp.open("wb") as handle:
        np.save(handle, array)
    os.replace(tmp, path)

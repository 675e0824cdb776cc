"""Faiss inner-product index over L2-normalized float32 vectors, keyed by doc id.

The caller normalizes; on normalized vectors inner product is cosine similarity. Flat search
is exact; IVF and HNSW trade a little recall for speed on large corpora, and IVF-PQ also
memory (``pq_bytes`` per vector instead of ``4 * dim``). ``kind="auto"`` picks by corpus size:
flat, then HNSW, then IVF-PQ. Every approximate index measures its recall@10 against exact
search when it is built and keeps it beside itself (``quality.json``). A GPU is used for
flat and IVF indexes when faiss was built with GPU support and sees a device (HNSW has no
faiss GPU implementation and stays on the CPU).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

from core.errors import InvalidInput, NotFound

AUTO_FLAT_MAX = 200_000
"""``kind="auto"`` builds an exact flat index up to this many vectors, ..."""
AUTO_HNSW_MAX = 2_000_000
"""... HNSW up to this many (4 * dim bytes + its graph per vector), IVF-PQ above."""
ADD_CHUNK = 16_384
IVF_TRAIN_PER_LIST = 256
IVF_TRAIN_MAX = 200_000  # k-means rows at most (but never under faiss's 39 per list)
RECALL_QUERIES, RECALL_K = 200, 10
INDEX_FILE, IDS_FILE, SPEC_FILE = "index.faiss", "ids.json", "spec.json"
QUALITY_FILE = "quality.json"
Kind = Literal["flat", "ivf", "hnsw", "ivfpq", "auto"]

Progress = Callable[[int, int], None]
"""Called with (vectors added so far, total) after each chunk."""


@dataclass(frozen=True)
class IndexSpec:
    """How to index: ``nlist`` None means ``4 * sqrt(n)``; ``pq_bytes`` None means the largest
    divisor of the dimension up to ``dim / 8`` (48 bytes for 384-d); ``use_gpu`` None means
    when available."""

    kind: Kind = "auto"
    nlist: int | None = None
    nprobe: int = 32
    hnsw_m: int = 32
    ef_construction: int = 40
    ef_search: int = 128
    pq_bytes: int | None = None
    use_gpu: bool | None = None

    def resolved(self, n: int) -> IndexSpec:
        """This spec with ``kind`` and, for IVF, ``nlist`` fixed for ``n`` vectors."""
        kind = self.kind
        if kind == "auto":
            kind = "flat" if n <= AUTO_FLAT_MAX else "hnsw" if n <= AUTO_HNSW_MAX else "ivfpq"
        if kind not in ("flat", "ivf", "hnsw", "ivfpq"):
            raise InvalidInput(f"unknown index kind '{kind}'", param="kind")
        nlist = self.nlist
        if kind in ("ivf", "ivfpq"):
            nlist = max(1, min(n, nlist or round(4 * math.sqrt(n))))
        return dataclasses.replace(self, kind=kind, nlist=nlist)

    def pq_m(self, dim: int) -> int:
        """Sub-quantizers (bytes per vector at 8 bits) of an IVF-PQ index over ``dim``."""
        if self.pq_bytes is not None:
            if dim % self.pq_bytes:
                msg = f"pq_bytes {self.pq_bytes} must divide the dimension {dim}"
                raise InvalidInput(msg, param="pq_bytes")
            return self.pq_bytes
        return max(m for m in range(1, max(1, dim // 8) + 1) if dim % m == 0)


def gpu_available() -> bool:
    """True when faiss was built with GPU support and sees at least one device."""
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


@functools.cache
def _gpu_resources() -> Any:
    return faiss.StandardGpuResources()


def _wants_gpu(spec: IndexSpec) -> bool:
    if spec.use_gpu and not gpu_available():
        raise InvalidInput("use_gpu is set but faiss sees no GPU", param="use_gpu")
    use = gpu_available() if spec.use_gpu is None else spec.use_gpu
    return use and spec.kind != "hnsw"


def _as_matrix(x: np.ndarray, dim: int | None, param: str) -> np.ndarray:
    """``x`` as a C-contiguous float32 (n, dim) matrix, or ``InvalidInput``."""
    x = np.asarray(x)
    if x.ndim != 2 or (dim is not None and x.shape[1] != dim) or x.shape[1] == 0:
        want = f"(n, {dim})" if dim is not None else "(n, dim)"
        raise InvalidInput(f"{param} must have shape {want}, got {x.shape}", param=param)
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidInput(f"{param} must be floating point, got {x.dtype}", param=param)
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not np.isfinite(x).all():
        raise InvalidInput(f"{param} contains NaN or infinite values", param=param)
    return x


def _new_index(dim: int, spec: IndexSpec) -> Any:
    if spec.kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, spec.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = spec.ef_construction
        return index
    if spec.kind == "ivf":
        quantizer = faiss.IndexFlatIP(dim)
        return faiss.IndexIVFFlat(quantizer, dim, spec.nlist, faiss.METRIC_INNER_PRODUCT)
    if spec.kind == "ivfpq":
        quantizer = faiss.IndexFlatIP(dim)
        m = spec.pq_m(dim)
        return faiss.IndexIVFPQ(quantizer, dim, spec.nlist, m, 8, faiss.METRIC_INNER_PRODUCT)
    return faiss.IndexFlatIP(dim)


def _to_device(index: Any, spec: IndexSpec) -> tuple[Any, bool]:
    """CPU ``index`` with its search parameters set, moved to GPU 0 when the spec wants it."""
    if spec.kind in ("ivf", "ivfpq"):
        faiss.extract_index_ivf(index).nprobe = min(spec.nprobe, spec.nlist or 1)
    elif spec.kind == "hnsw":
        index.hnsw.efSearch = spec.ef_search
    on_gpu = _wants_gpu(spec)
    if on_gpu:  # the GPU copy keeps nprobe
        index = faiss.index_cpu_to_gpu(_gpu_resources(), 0, index)
    return index, on_gpu


class VectorIndex:
    """A faiss index plus the doc id of each row; scores are inner products."""

    def __init__(
        self,
        index: Any,
        ids: list[str],
        spec: IndexSpec,
        on_gpu: bool,
        quality: dict[str, Any] | None = None,
    ) -> None:
        self._index = index
        self.ids = ids
        self.spec = spec
        self.on_gpu = on_gpu
        self.quality = quality or {}
        """``recall_at_10`` against exact search (1.0 for flat), and how it was measured."""

    @classmethod
    def build(
        cls,
        vectors: np.ndarray,
        ids: list[str],
        spec: IndexSpec = IndexSpec(),
        progress: Progress | None = None,
    ) -> VectorIndex:
        """Index ``vectors`` (row i is doc ``ids[i]``), adding in chunks that report progress,
        then measure the recall@10 an approximate index keeps (:func:`measure_recall`)."""
        vectors = _as_matrix(vectors, None, "vectors")
        n = len(vectors)
        if n == 0 or n != len(ids):
            msg = f"need one id per vector, got {n} vectors and {len(ids)} ids"
            raise InvalidInput(msg, param="ids")
        if len(set(ids)) != n:
            raise InvalidInput("doc ids must be unique", param="ids")
        spec = spec.resolved(n)
        index, on_gpu = _to_device(_new_index(vectors.shape[1], spec), spec)
        if spec.kind in ("ivf", "ivfpq"):
            index.train(_train_sample(vectors, spec.nlist or 1))
        for start in range(0, n, ADD_CHUNK):
            index.add(vectors[start : start + ADD_CHUNK])
            if progress is not None:
                progress(min(start + ADD_CHUNK, n), n)
        built = cls(index, list(ids), spec, on_gpu)
        built.quality = measure_recall(built, vectors)
        return built

    def __len__(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def search(
        self, queries: np.ndarray, k: int, batch_size: int = 1024
    ) -> tuple[list[list[str]], np.ndarray]:
        """Top-``k`` doc ids per query (``k`` capped at the index size) and their scores.

        Slots faiss could not fill (possible with IVF and HNSW) are left out of the id lists
        and hold ``-inf`` in the (n_queries, k) score matrix.
        """
        if k < 1 or batch_size < 1:
            raise InvalidInput("k and batch_size must be >= 1", param="k")
        queries = _as_matrix(queries, self.dim, "queries")
        k = min(k, len(self))
        scores = np.empty((len(queries), k), dtype=np.float32)
        labels = np.empty((len(queries), k), dtype=np.int64)
        for start in range(0, len(queries), batch_size):
            stop = start + batch_size
            scores[start:stop], labels[start:stop] = self._index.search(queries[start:stop], k)
        scores[labels < 0] = -np.inf
        hits = [[self.ids[j] for j in row if j >= 0] for row in labels.tolist()]
        return hits, scores

    def reconstruct_all(self) -> np.ndarray:
        """The (n, dim) vectors the index holds, in row order (IVF-PQ: as its codes decode)."""
        index = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        if self.spec.kind in ("ivf", "ivfpq"):
            faiss.extract_index_ivf(index).make_direct_map()
        return index.reconstruct_n(0, index.ntotal)

    def save(self, directory: str | Path) -> None:
        """Write the index, ids and spec to ``directory`` (a GPU index is saved as CPU)."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        index = faiss.index_gpu_to_cpu(self._index) if self.on_gpu else self._index
        faiss.write_index(index, str(path / INDEX_FILE))
        (path / IDS_FILE).write_text(json.dumps(self.ids))
        (path / SPEC_FILE).write_text(json.dumps(dataclasses.asdict(self.spec)))
        (path / QUALITY_FILE).write_text(json.dumps(self.quality))

    @classmethod
    def load(cls, directory: str | Path, use_gpu: bool | None = None) -> VectorIndex:
        """Read an index written by ``save``; ``use_gpu`` as in ``IndexSpec``."""
        path = Path(directory)
        missing = [f for f in (INDEX_FILE, IDS_FILE, SPEC_FILE) if not (path / f).is_file()]
        if missing:
            msg = f"no saved index in {path} (missing {', '.join(missing)})"
            raise NotFound(msg, param="directory")
        spec = IndexSpec(**json.loads((path / SPEC_FILE).read_text()))
        spec = dataclasses.replace(spec, use_gpu=use_gpu)
        ids = json.loads((path / IDS_FILE).read_text())
        index, on_gpu = _to_device(faiss.read_index(str(path / INDEX_FILE)), spec)
        if index.ntotal != len(ids):
            msg = f"{path} holds {index.ntotal} vectors but {len(ids)} ids"
            raise InvalidInput(msg, param="ids")
        quality_file = path / QUALITY_FILE  # indexes saved before it was measured have none
        quality = json.loads(quality_file.read_text()) if quality_file.is_file() else {}
        return cls(index, ids, spec, on_gpu, quality)


def measure_recall(index: VectorIndex, vectors: np.ndarray) -> dict[str, Any]:
    """recall@10 of ``index`` against exact inner-product search over ``vectors`` (its rows).

    The queries are ``RECALL_QUERIES`` rows of the corpus drawn with a fixed seed (a built
    index has no queries of its own); each row's exact top 10 comes from a brute-force scan
    in chunks, so memory stays at one chunk of scores. A flat index is exact: 1.0, not measured.
    """
    if index.spec.kind == "flat":
        return {"recall_at_10": 1.0, "exact": True}
    n = len(vectors)
    rows = np.sort(np.random.default_rng(0).choice(n, min(RECALL_QUERIES, n), replace=False))
    queries = np.ascontiguousarray(vectors[rows])
    k = min(RECALL_K, n)
    exact = _exact_top(queries, vectors, k)
    _, found = index._index.search(queries, k)
    hits = [len(set(f.tolist()) & set(e.tolist())) / k for f, e in zip(found, exact, strict=True)]
    return {
        "recall_at_10": round(float(np.mean(hits)), 4),
        "exact": False,
        "queries": len(rows),
        "queries_from": "corpus rows, seed 0",
    }


def _exact_top(queries: np.ndarray, vectors: np.ndarray, k: int) -> np.ndarray:
    """Row numbers of the ``k`` best inner products per query, scanning ``vectors`` in chunks."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), k), dtype=np.int64)
    for start in range(0, len(vectors), ADD_CHUNK * 4):
        scores = queries @ np.asarray(vectors[start : start + ADD_CHUNK * 4]).T
        rows = np.broadcast_to(np.arange(start, start + scores.shape[1]), scores.shape)
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate([best_rows, rows], axis=1)
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    return best_rows


def _train_sample(vectors: np.ndarray, nlist: int) -> np.ndarray:
    """At most ``IVF_TRAIN_PER_LIST * nlist`` rows, and no more than ``IVF_TRAIN_MAX`` unless
    39 per list need more, drawn without replacement (seeded)."""
    limit = min(IVF_TRAIN_PER_LIST * nlist, max(IVF_TRAIN_MAX, 39 * nlist))
    if len(vectors) <= limit:
        return vectors
    rows = np.sort(np.random.default_rng(0).choice(len(vectors), limit, replace=False))
    return vectors[rows]

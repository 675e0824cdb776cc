"""Corpus vectors as Parquet: ``id`` (string), ``vector`` (fixed-size list of float32) and
``text_hash`` (the hex sha1 of the text that was encoded, as the embedding cache keys it), so a
consumer can tell which rows are stale when a document changes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROW_GROUP = 65_536


def schema(dim: int) -> pa.Schema:
    return pa.schema(
        [
            ("id", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
            ("text_hash", pa.string()),
        ],
        metadata={"dim": str(dim)},
    )


def write_vectors(path: Path, ids: list[str], vectors: np.ndarray, text_hashes: list[str]) -> int:
    """Write one row per id, ``ROW_GROUP`` rows at a time (``vectors`` may be memory-mapped)."""
    if not (len(ids) == len(vectors) == len(text_hashes)):
        raise ValueError("ids, vectors and text hashes must have one entry per row")
    dim = vectors.shape[1]
    tmp = path.with_name(f".{path.name}.tmp")
    with pq.ParquetWriter(tmp, schema(dim)) as writer:
        for start in range(0, len(ids), ROW_GROUP):
            stop = start + ROW_GROUP
            flat = pa.array(np.ascontiguousarray(vectors[start:stop], np.float32).ravel())
            writer.write_table(
                pa.table(
                    {
                        "id": ids[start:stop],
                        "vector": pa.FixedSizeListArray.from_arrays(flat, dim),
                        "text_hash": text_hashes[start:stop],
                    },
                    schema=schema(dim),
                )
            )
    tmp.replace(path)
    return len(ids)


def read_batches(path: Path) -> Iterator[tuple[list[str], np.ndarray, list[str]]]:
    """(ids, (n, dim) float32 vectors, text hashes) per row group of a file ``write_vectors``
    wrote."""
    source = pq.ParquetFile(path)
    dim = int(source.schema_arrow.metadata[b"dim"])
    for batch in source.iter_batches(batch_size=ROW_GROUP):
        vectors = batch.column("vector").flatten().to_numpy().reshape(-1, dim)
        yield batch.column("id").to_pylist(), vectors, batch.column("text_hash").to_pylist()

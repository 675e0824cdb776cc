"""The on-disk embedding cache encodes each text once per model setting."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from core.models.cache import CacheKey, EmbeddingCache


class CountingEncoder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.array([[len(t), sum(map(ord, t)) % 97, 1.0] for t in texts], np.float32)


KEY = CacheKey("fp1", "", 128, True)


def test_second_lookup_encodes_nothing(tmp_path: Path) -> None:
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    first, stats1 = cache.get_or_encode(KEY, ["a", "bb", "ccc"], enc)
    second, stats2 = EmbeddingCache(tmp_path).get_or_encode(KEY, ["ccc", "a", "bb"], enc)
    assert len(enc.calls) == 1
    assert (stats1.hits, stats1.misses, stats2.hits, stats2.misses) == (0, 3, 3, 0)
    np.testing.assert_array_equal(second, first[[2, 0, 1]])


def test_only_new_texts_are_encoded(tmp_path: Path) -> None:
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    cache.get_or_encode(KEY, ["a", "bb"], enc)
    vectors, stats = cache.get_or_encode(KEY, ["bb", "new", "a", "new"], enc)
    assert enc.calls[-1] == ["new"]
    assert (stats.hits, stats.misses) == (2, 1)
    np.testing.assert_array_equal(vectors[1], vectors[3])


def test_settings_are_part_of_the_key(tmp_path: Path) -> None:
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    cache.get_or_encode(KEY, ["a"], enc)
    for other in (
        CacheKey("fp2", "", 128, True),
        CacheKey("fp1", "query: ", 128, True),
        CacheKey("fp1", "", 256, True),
        CacheKey("fp1", "", 128, False),
    ):
        cache.get_or_encode(other, ["a"], enc)
    assert len(enc.calls) == 5


def test_digests_ending_in_zero_bytes_are_kept(tmp_path: Path) -> None:
    text = next(f"t{i}" for i in range(100000) if hashlib.sha1(f"t{i}".encode()).digest()[-1] == 0)
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    cache.get_or_encode(KEY, [text], enc)
    cache.get_or_encode(KEY, [text], enc)
    assert len(enc.calls) == 1


def test_interrupted_write_leaves_no_visible_shard(tmp_path: Path) -> None:
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    cache.get_or_encode(KEY, ["a"], enc)
    folder = tmp_path / KEY.digest
    (folder / "orphan.npy").write_bytes(b"partial")  # vectors written, keys never renamed in
    vectors, stats = cache.get_or_encode(KEY, ["a"], enc)
    assert stats.hits == 1 and vectors.shape == (1, 3)


def test_float16_shards_are_half_the_size_and_read_back_as_float32(tmp_path: Path) -> None:
    texts = [f"text {i}" for i in range(200)]
    wide, _ = EmbeddingCache(tmp_path / "32").get_or_encode(KEY, texts, CountingEncoder())
    half, _ = EmbeddingCache(tmp_path / "16", "float16").get_or_encode(
        KEY, texts, CountingEncoder()
    )
    again, stats = EmbeddingCache(tmp_path / "16").get_or_encode(KEY, texts, CountingEncoder())
    assert again.dtype == np.float32 and stats.misses == 0
    np.testing.assert_allclose(again, wide, rtol=1e-3)
    np.testing.assert_array_equal(again, half)
    size = {
        d: sum(p.stat().st_size for p in (tmp_path / d).rglob("*[0-9a-f].npy"))
        for d in ("32", "16")
    }
    assert size["16"] < 0.6 * size["32"]


def test_fill_writes_one_shard_per_chunk_and_a_rerun_resumes(tmp_path: Path) -> None:
    texts = [f"doc {i}" for i in range(10)]
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()

    def dies_after_two_chunks(batch: list[str]) -> np.ndarray:
        if len(enc.calls) == 2:
            raise RuntimeError("worker lost")
        return enc(batch)

    with pytest.raises(RuntimeError, match="worker lost"):
        cache.fill(KEY, texts, dies_after_two_chunks, chunk_size=3)
    assert [len(c) for c in enc.calls] == [3, 3]
    progress: list[tuple[int, int]] = []
    stats = cache.fill(KEY, texts, enc, chunk_size=3, progress=lambda *a: progress.append(a))
    assert (stats.hits, stats.misses) == (6, 4)
    assert [len(c) for c in enc.calls[2:]] == [3, 1] and progress[-1] == (10, 10)
    assert cache.fill(KEY, texts, enc, chunk_size=3).misses == 0  # idempotent
    assert len(list((tmp_path / KEY.digest).glob("*.keys.npy"))) == 4


def test_lookup_writes_into_a_memory_mapped_file(tmp_path: Path) -> None:
    texts = [f"doc {i}" for i in range(50)]
    cache = EmbeddingCache(tmp_path / "cache")
    cache.fill(KEY, texts[:30], CountingEncoder(), chunk_size=7)
    path = tmp_path / "vectors.npy"
    vectors, stats = cache.get_or_encode(
        KEY,
        texts,
        CountingEncoder(),
        out=lambda n, dim: np.lib.format.open_memmap(path, "w+", np.float32, (n, dim)),
    )
    assert isinstance(vectors, np.memmap) and (stats.hits, stats.misses) == (30, 20)
    np.testing.assert_array_equal(np.load(path), CountingEncoder()(texts))

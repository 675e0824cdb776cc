"""The on-disk embedding cache encodes each text once per model setting."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

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

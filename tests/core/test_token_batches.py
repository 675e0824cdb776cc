"""Job encodes form forward passes by tokens, not texts, and give what ``encode`` gave."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from core.models.embedder import load_embedder, token_batches
from tests.conftest import sample_texts


def test_passes_hold_a_token_budget_and_a_text_cap() -> None:
    lengths = [100, 90, 50, 50, 50, 10, 10, 10, 10, 10, 3]
    batches = token_batches(lengths, max_tokens=120, max_texts=4)
    sizes = [b.stop - b.start for b in batches]
    assert sum(sizes) == len(lengths) and batches[0].start == 0
    assert all(a.stop == b.start for a, b in itertools.pairwise(batches))
    assert all(
        (n <= 4 and n * lengths[b.start] <= 120) or n == 1
        for b, n in zip(batches, sizes, strict=False)
    )
    assert sizes[:3] == [1, 1, 2]  # 100 and 90 alone (a pass of one over the budget too)
    assert token_batches([500], max_tokens=120, max_texts=4) == [slice(0, 1)]


def test_token_batched_encode_equals_sentence_transformers(tiny_model_dir: Path) -> None:
    texts = [*sample_texts(60)[:60], "", "a", "short one"]
    embedder = load_embedder(str(tiny_model_dir), document_instruction="passage: ")
    embedder.max_batch_tokens = 256  # many passes of different sizes
    seen: list[tuple[int, int]] = []
    vectors = embedder.encode(texts, "document", lambda done, total: seen.append((done, total)))
    expected = embedder.st.encode_document(
        texts, prompt="passage: ", normalize_embeddings=True, convert_to_numpy=True
    )
    np.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert seen[-1] == (len(texts), len(texts))
    modes = [m.training for m in embedder.st.modules()]
    embedder.encode(texts[:3], "query")
    assert [m.training for m in embedder.st.modules()] == modes  # left as it was
    embedder.st.train()  # a model under training is scored without dropout, and left training
    np.testing.assert_allclose(embedder.encode(texts[:5], "document"), vectors[:5], atol=1e-5)
    assert all(m.training for m in embedder.st.modules())

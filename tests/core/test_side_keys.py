"""The cache keys each side by the modules that make it: a query adapter shares its base
model's document vectors, and the tally counts what was encoded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from core.evaluation.evaluator import encode_cached
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder
from core.training.query_adapter import QueryAdapter, save_adapter_model
from tests.conftest import build_tiny_model, sample_texts

DOCS = sample_texts(40)[:30]


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def adapter(base: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Embedder:
    """A saved and reloaded query adapter on ``base`` whose query side is not the identity."""
    layer = QueryAdapter(base.st.get_embedding_dimension() or 0)
    with torch.no_grad():
        layer.linear.weight.add_(0.3 * torch.randn_like(layer.linear.weight))
    out = save_adapter_model(base.st, layer, tmp_path_factory.mktemp("adapter") / "model")
    return load_embedder(str(out))


def test_an_adapters_document_side_is_its_base_models(base: Embedder, adapter: Embedder) -> None:
    assert adapter.fingerprint != base.fingerprint  # other files ...
    assert adapter.side_fingerprint("document") == base.side_fingerprint("document")
    assert adapter.side_fingerprint("query") != base.side_fingerprint("query")
    assert base.side_fingerprint("query") == base.side_fingerprint("document")
    # ... and the shared key is honest: the document vectors are the same
    np.testing.assert_allclose(
        adapter.encode(DOCS[:5], "document"), base.encode(DOCS[:5], "document"), atol=1e-6
    )
    assert not np.allclose(adapter.encode(DOCS[:5], "query"), base.encode(DOCS[:5], "query"))


def test_other_weights_have_another_document_fingerprint(base: Embedder, tmp_path: Path) -> None:
    other = load_embedder(str(build_tiny_model(tmp_path / "other", seed=1)))
    assert other.side_fingerprint("document") != base.side_fingerprint("document")


def test_the_adapter_reads_the_corpus_its_base_model_cached(
    base: Embedder, adapter: Embedder, tmp_path: Path
) -> None:
    cache = EmbeddingCache(tmp_path)
    first, hits = encode_cached(base, DOCS, "document", cache)
    again, adapter_hits = encode_cached(adapter, DOCS, "document", cache)
    encode_cached(adapter, DOCS[:3], "query", cache)
    assert (hits, adapter_hits) == (0, len(set(DOCS)))
    np.testing.assert_array_equal(again, first)
    tally = cache.tally.as_metrics()
    assert tally == {
        "corpus_encodes": 1,
        "documents_encoded": len(set(DOCS)),
        "documents_cached": len(set(DOCS)),
        "query_encodes": 1,
        "queries_encoded": 3,
    }

"""Shared fixtures: a tiny BERT sentence model built offline once per test session."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "scifact-sample"
SHARED = REPO.parent / "shared" / "datasets"


def sample_texts(limit: int = 400) -> list[str]:
    lines = (SAMPLE / "corpus.jsonl").read_text("utf-8").splitlines()[:limit]
    queries = (SAMPLE / "queries.jsonl").read_text("utf-8").splitlines()
    return [json.loads(x)["text"] for x in lines] + [json.loads(x)["text"] for x in queries]


def build_tiny_model(out: Path, *, seed: int = 0) -> Path:
    """A 2-layer BERT (hidden 32) with a WordPiece vocab trained here; mean pooling, normalized."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules as models
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    raw = out.parent / f"{out.name}-hf"
    raw.mkdir(parents=True, exist_ok=True)
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(sample_texts(), vocab_size=3000, min_frequency=2)
    BertTokenizerFast(vocab=wordpiece.get_vocab(), do_lower_case=True).save_pretrained(raw)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw, safe_serialization=True)
    transformer = models.Transformer(str(raw), max_seq_length=64)
    pooling = models.Pooling(transformer.get_embedding_dimension(), "mean")
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(
        str(out), safe_serialization=True
    )
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-bert")


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    return SAMPLE

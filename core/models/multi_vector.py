"""Late-interaction (ColBERT) models: one L2-normalized vector per token, scored by MaxSim.

They load as sentence-transformers' ``MultiVectorEncoder`` (PyLate's ColBERT, upstreamed into
sentence-transformers 6; it also loads PyLate and Stanford-NLP checkpoints). A model directory
is multi-vector when its ``config_sentence_transformers.json`` says so.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core.models.config import ModelConfig
from core.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from sentence_transformers import MultiVectorEncoder

Side = Literal["query", "document"]
MODEL_TYPES = ("MultiVectorEncoder", "ColBERT")  # sentence-transformers 6, PyLate
QUERY_EXPANSION = 32  # classic ColBERT: short queries are padded with [MASK] to 32 tokens
CHUNK = 256


def is_multi_vector(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a late-interaction model."""
    path = Path(model_dir) / "config_sentence_transformers.json"
    if not path.is_file():
        return False
    return json.loads(path.read_text("utf-8")).get("model_type") in MODEL_TYPES


def set_lengths(model: MultiVectorEncoder, query_length: int, document_length: int) -> None:
    """Cut queries to ``query_length`` and documents to ``document_length`` tokens; expand
    short queries to ``QUERY_EXPANSION`` tokens with [MASK] (saved with the model)."""
    transformer = model[0]
    transformer.query_length = query_length
    transformer.document_length = document_length
    if transformer.tokenizer.mask_token is not None:
        transformer.query_expansion = {
            "strategy": "min",
            "attend": False,
            "token": None,
            "length": min(QUERY_EXPANSION, query_length),
        }


@dataclass
class MultiVectorEmbedder:
    """Encodes queries and documents into token vectors the way the model's config says."""

    model: ResolvedModel
    mve: MultiVectorEncoder
    fingerprint: str
    batch_size: int = 32

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def max_seq_length(self) -> int:
        """Document tokens (what an index stores)."""
        return int(self.mve[0].document_length or self.mve.max_seq_length)

    @property
    def query_length(self) -> int:
        return int(self.mve[0].query_length or self.mve.max_seq_length)

    @property
    def dim(self) -> int:
        return int(self.mve.get_embedding_dimension() or 0)

    @property
    def tokenizer(self) -> Any:
        return self.mve.tokenizer

    def instruction(self, side: Side) -> str:
        cfg = self.config
        return cfg.query_instruction if side == "query" else cfg.document_instruction

    def length(self, side: Side) -> int:
        if side == "query":
            return max(self.query_length, QUERY_EXPANSION)
        return self.max_seq_length

    def count_tokens(self, texts: Sequence[str], side: Side) -> list[int]:
        """Tokens per text before truncation: instruction and special tokens included."""
        prompt = self.instruction(side)
        ids = self.mve.tokenizer([prompt + t for t in texts], truncation=False, verbose=False)
        return [len(i) for i in ids["input_ids"]]

    def encode_tokens(
        self, texts: Sequence[str], side: Side, progress: Callable[[int, int], None] | None = None
    ) -> list[np.ndarray]:
        """One float32 (tokens, dim) matrix per text, L2-normalized rows, in input order."""
        encode = self.mve.encode_query if side == "query" else self.mve.encode_document
        out: list[np.ndarray] = []
        for start in range(0, len(texts), CHUNK):
            chunk = list(texts[start : start + CHUNK])
            vectors = encode(
                chunk,
                prompt=self.instruction(side),
                batch_size=self.batch_size,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            out.extend(np.asarray(v, dtype=np.float32) for v in vectors)
            if progress:
                progress(min(start + CHUNK, len(texts)), len(texts))
        return out

    def encode(
        self, texts: Sequence[str], side: Side, progress: Callable[[int, int], None] | None = None
    ) -> np.ndarray:
        """float16 (n, tokens, dim): every text's token vectors, zero rows after its last
        token, so that the embedding cache stores them as it stores dense vectors."""
        width = self.length(side)
        out = np.zeros((len(texts), width, self.dim), np.float16)
        for i, vectors in enumerate(self.encode_tokens(texts, side, progress)):
            out[i, : len(vectors)] = vectors[:width]
        return out


def load_multi_vector(
    resolved: ResolvedModel,
    fingerprint: str,
    *,
    device: str | None = None,
    batch_size: int = 32,
) -> MultiVectorEmbedder:
    """The late-interaction model of ``resolved`` (safetensors only, no remote code)."""
    from sentence_transformers import MultiVectorEncoder

    mve = MultiVectorEncoder(
        str(resolved.path),
        device=device,
        local_files_only=True,
        model_kwargs={"use_safetensors": True},
    )
    length = resolved.config.max_seq_length
    if length:
        mve[0].document_length = length
    return MultiVectorEmbedder(resolved, mve, fingerprint, batch_size=min(batch_size, 64))


def unpad(matrix: np.ndarray) -> np.ndarray:
    """The rows of a padded (tokens, dim) matrix that are real tokens (not all zero)."""
    return matrix[np.any(matrix != 0, axis=1)]

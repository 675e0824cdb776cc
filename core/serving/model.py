"""A loaded model as the engine serves it: the embedder, a token counter and its size."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import InvalidInput
from core.models.embedder import Embedder, Side
from core.serving.onnx import OnnxEncoder
from core.serving.spec import ModelKey, ServeSpec

if TYPE_CHECKING:
    from tokenizers import Tokenizer


@dataclass(frozen=True)
class ServedModel:
    key: ModelKey
    embedder: Embedder
    tokenizer: Tokenizer  # a private copy without truncation or padding, safe beside encode
    nbytes: int  # parameters and buffers
    onnx: OnnxEncoder | None = None  # the transformer in ONNX Runtime, when on the CPU

    @classmethod
    def wrap(cls, key: ModelKey, embedder: Embedder, spec: ServeSpec) -> ServedModel:
        from tokenizers import Tokenizer

        backend = getattr(embedder.st.tokenizer, "backend_tokenizer", None)
        if backend is None:
            raise InvalidInput(
                f"model '{key.ref}' has no fast tokenizer; serving counts tokens with one",
                code="unsupported_model",
                param="model",
            )
        tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        tensors = [*embedder.st.parameters(), *embedder.st.buffers()]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        onnx = None
        if spec.onnx_dir is not None and embedder.st.device.type == "cpu":
            onnx = OnnxEncoder.build(embedder, spec.onnx_dir, spec.max_batch_size)
        return cls(key, embedder, tokenizer, nbytes * (2 if onnx else 1), onnx)

    @property
    def call_size(self) -> int:
        """Texts per forward pass: small for ONNX Runtime, whose calls cost little."""
        return self.onnx.batch_size if self.onnx is not None else self.embedder.batch_size

    def encode(self, texts: list[str], side: Side) -> np.ndarray:
        """Embeddings as ``Embedder.encode`` gives them, through ONNX Runtime when loaded."""
        if self.onnx is not None:
            return self.onnx.encode(texts, side)
        return self.embedder.encode(texts, side)

    @property
    def path(self) -> Path:
        return self.embedder.model.path

    @property
    def dim(self) -> int:
        return int(self.embedder.st.get_embedding_dimension() or 0)

    @property
    def max_tokens(self) -> int:
        return self.embedder.max_seq_length

    def count_tokens(self, texts: Sequence[str], side: Side) -> list[int]:
        """Tokens of each text as the model would see it untruncated: instruction and specials."""
        prompt = self.embedder.instruction(side)
        return [len(e.ids) for e in self.tokenizer.encode_batch([prompt + t for t in texts])]

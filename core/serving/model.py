"""A loaded model as the engine serves it: the embedder, its tokenization and its size."""

from __future__ import annotations

import logging
import threading
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import InvalidInput, TooLarge
from core.models.embedder import Embedder, Side, half_unavailable
from core.serving import tokens
from core.serving.onnx import OnnxEncoder
from core.serving.runtime import int8_encoder
from core.serving.spec import TRUNCATE_HINT, ModelKey, ServeSpec
from core.serving.tokens import Rows, Tokens

if TYPE_CHECKING:
    from tokenizers import Tokenizer

log = logging.getLogger("embedtune.serving")


@dataclass(frozen=True)
class ServedModel:
    key: ModelKey
    embedder: Embedder
    tokenizer: Tokenizer  # a private copy without truncation or padding, to count tokens
    nbytes: int  # parameters and buffers
    onnx: OnnxEncoder | None  # the transformer in ONNX Runtime, when on the CPU
    turns: AbstractContextManager[Any]  # held while tokenizing where callers would clash

    @classmethod
    def wrap(cls, key: ModelKey, embedder: Embedder, spec: ServeSpec) -> ServedModel:
        from tokenizers import Tokenizer

        backend = getattr(embedder.st.tokenizer, "backend_tokenizer", None)
        prompts = {side: embedder.instruction(side) for side in ("query", "document")}
        reason = tokens.unsupported(embedder.st, prompts) if backend else "no fast tokenizer"
        if reason:
            raise InvalidInput(
                f"model '{key.ref}' cannot be served: {reason}",
                code="unsupported_model",
                param="model",
            )
        embedder = at_served_precision(key, embedder, spec)
        tokenizer = Tokenizer.from_str(backend.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        turns = threading.Lock() if tokens.settings_vary(embedder.st, prompts) else nullcontext()
        tensors = [*embedder.st.parameters(), *embedder.st.buffers()]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        onnx = None
        if spec.onnx_dir is not None and embedder.st.device.type == "cpu":
            if key.ref in spec.int8_models:
                onnx = int8_encoder(embedder, spec.onnx_dir, spec.max_batch_size, key.ref)
            else:
                onnx = OnnxEncoder.build(embedder, spec.onnx_dir, spec.max_batch_size)
        return cls(key, embedder, tokenizer, nbytes * (2 if onnx else 1), onnx, turns)

    @property
    def call_size(self) -> int:
        """Texts per forward pass: small for ONNX Runtime, whose calls cost little."""
        return self.onnx.batch_size if self.onnx is not None else self.embedder.batch_size

    def tokenize(self, texts: list[str], side: Side, truncate: bool) -> Tokens:
        """Token rows of ``texts``, on a tokenizer thread; ``TooLarge`` for one longer than the
        model's maximum tokens unless ``truncate``."""
        with self.turns:
            prepared = tokens.tokenize(
                self.embedder.st, texts, self.embedder.instruction(side), side
            )
        if not truncate:
            self._refuse_cut(texts, prepared.lengths, side)
        return prepared

    def _refuse_cut(self, texts: list[str], lengths: list[int], side: Side) -> None:
        """``TooLarge`` naming the longest text that tokenization cut to the maximum, if any:
        only texts that reached the maximum are counted again, untruncated."""
        limit = self.max_tokens
        reached = [i for i, n in enumerate(lengths) if n >= limit]
        if not reached:
            return
        counts = self.count_tokens([texts[i] for i in reached], side)
        longest = max(range(len(reached)), key=counts.__getitem__)
        if counts[longest] > limit:
            raise TooLarge(
                f"input {reached[longest]} has {counts[longest]} tokens, more than the {limit} "
                f"the model takes; {TRUNCATE_HINT}",
                code="input_too_long",
                param=f"input[{reached[longest]}]",
            )

    def encode(self, rows: list[Rows], shared: dict[str, Any], side: Side) -> np.ndarray:
        """Embeddings of token rows as ``Embedder.encode`` gives them for the texts, through
        ONNX Runtime when loaded."""
        features = tokens.collate(self.embedder.st, rows, shared)
        if self.onnx is not None:
            return self.onnx.encode_features(features)
        return self.embedder.encode_features(features, side)

    @property
    def path(self) -> Path:
        return self.embedder.model.path

    @property
    def dim(self) -> int:
        return int(self.embedder.st.get_embedding_dimension() or 0)

    @property
    def max_tokens(self) -> int:
        return self.embedder.max_seq_length

    def count_tokens(self, texts: list[str], side: Side) -> list[int]:
        """Tokens of each text as the model would see it untruncated: instruction and specials."""
        prompt = self.embedder.instruction(side)
        return [len(e.ids) for e in self.tokenizer.encode_batch([prompt + t for t in texts])]


def at_served_precision(key: ModelKey, embedder: Embedder, spec: ServeSpec) -> Embedder:
    """``embedder`` at the fp16/bf16 its reference opted into where this server can, else as
    it is, with a warning saying why."""
    half = spec.half_models.get(key.ref)
    if half is None:
        return embedder
    reason = half_unavailable(embedder, half)
    if reason is None:
        return replace(embedder, precision=half)
    log.warning("model %s opted into %s, served at fp32: %s", key.ref, half, reason)
    return embedder

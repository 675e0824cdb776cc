"""A late-interaction (ColBERT) model as the engine serves it: token vectors and MaxSim scores.

Its requests are encoded one at a time on a worker thread (no cross-request batching: the
batcher packs single vectors per text); the lock keeps two requests off the model at once.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from core.errors import InvalidInput, TooLarge
from core.models.multi_vector import MultiVectorEmbedder, Side
from core.serving.spec import TRUNCATE_HINT, ModelKey


@dataclass
class ServedMultiVector:
    key: ModelKey
    embedder: MultiVectorEmbedder
    nbytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def wrap(cls, key: ModelKey, embedder: object) -> ServedMultiVector:
        if not isinstance(embedder, MultiVectorEmbedder):
            raise InvalidInput(
                f"model '{key.ref}' gives one vector per text, not token vectors; "
                'leave "output" unset (or "dense")',
                code="not_multi_vector",
                param="output",
            )
        tensors = [*embedder.mve.parameters(), *embedder.mve.buffers()]
        return cls(key, embedder, sum(t.numel() * t.element_size() for t in tensors))

    def encode(self, texts: list[str], side: Side, truncate: bool) -> tuple[list[np.ndarray], int]:
        """Each text's token vectors and the tokens the model read (after truncation);
        ``TooLarge`` for a text over the side's length unless ``truncate``."""
        limit = self.embedder.query_length if side == "query" else self.embedder.max_seq_length
        counts = self.embedder.count_tokens(texts, side)
        if not truncate:
            for i, n in enumerate(counts):
                if n > limit:
                    raise TooLarge(
                        f"input {i} has {n} tokens, more than the {limit} the model takes "
                        f"for a {side}; {TRUNCATE_HINT}",
                        code="input_too_long",
                        param=f"input[{i}]",
                    )
        with self.lock:
            vectors = self.embedder.encode_tokens(texts, side)
        return vectors, sum(min(n, limit) for n in counts)

    def score(self, queries: list[str], documents: list[str]) -> tuple[list[float], int]:
        """MaxSim of each (query, document) pair, and the tokens read."""
        from sentence_transformers.multi_vector_encoder import maxsim_pairwise

        q, q_tokens = self.encode(queries, "query", truncate=True)
        d, d_tokens = self.encode(documents, "document", truncate=True)
        scores = maxsim_pairwise([np.asarray(v) for v in q], [np.asarray(v) for v in d])
        return [float(s) for s in scores.tolist()], q_tokens + d_tokens

"""A remote OpenAI-compatible ``/v1/embeddings`` endpoint as a model, for eval and compare:
``remote:<model name>`` (e.g. ``remote:text-embedding-3-small``), so a report can set a tuned
small model against the API a team pays for.

The endpoint and its key are the operator's (``EMBEDTUNE_EMBEDDINGS_API_*``); the key is never
in a reference, a spec, a report or a log. Texts go in batches through the ``openai`` client,
which retries 429/5xx and lost connections with exponential backoff; vectors come back in input
order, L2-normalized, and the embedding cache keys them by a fingerprint of the endpoint and
model name, so a second evaluation sends nothing.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from core.errors import InvalidInput, Transient
from core.models.config import ModelConfig

PREFIX = "remote:"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,199}")
MAX_INPUT_TOKENS = 8191  # OpenAI's per-input limit; the endpoint cuts or refuses beyond


def is_remote(ref: str) -> bool:
    return ref.startswith(PREFIX)


def remote_name(ref: str) -> str:
    """The endpoint's model name in ``remote:<name>``; a malformed one is ``InvalidInput``."""
    name = ref[len(PREFIX) :]
    if not _NAME.fullmatch(name) or ".." in name or "://" in name:
        raise InvalidInput(
            f"'{ref[:80]}' is not remote:<model name>", code="invalid_model", param="model"
        )
    return name


@dataclass(frozen=True)
class RemoteEndpoint:
    base_url: str
    api_key: str = field(repr=False)
    batch_size: int = 64
    max_retries: int = 4
    timeout: float = 60.0


@dataclass(frozen=True)
class RemoteModel:
    ref: str


class RemoteEmbedder:
    """What ``evaluate`` needs of an embedder (``encode``, ``fingerprint``, ``config``,
    ``instruction``, ``max_seq_length``), answered by a remote endpoint."""

    def __init__(self, ref: str, endpoint: RemoteEndpoint) -> None:
        from openai import OpenAI

        self.name = remote_name(ref)
        self.model = RemoteModel(ref)
        self.endpoint = endpoint
        self.config = ModelConfig(normalize=True)
        self.max_seq_length = MAX_INPUT_TOKENS
        digest = hashlib.sha256(f"{endpoint.base_url}\0{self.name}".encode()).hexdigest()
        self.fingerprint = f"remote-{digest[:32]}"
        self.batch_size = endpoint.batch_size
        self.requests = 0
        self._client = OpenAI(
            base_url=endpoint.base_url,
            api_key=endpoint.api_key,
            max_retries=endpoint.max_retries,
            timeout=endpoint.timeout,
        )

    def instruction(self, side: str) -> str:
        return ""

    def encode(
        self,
        texts: Sequence[str],
        side: str,
        progress: Callable[[int, int], None] | None = None,
    ) -> np.ndarray:
        """float32, L2-normalized vectors in input order; batches of ``batch_size``."""
        import openai

        parts: list[np.ndarray] = []
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            try:
                response = self._client.embeddings.create(
                    model=self.name, input=batch, encoding_format="float"
                )
            except openai.APIError as exc:
                raise Transient(
                    f"the embeddings endpoint failed for model '{self.name}' "
                    f"({type(exc).__name__})",
                    code="remote_embeddings_failed",
                    param="model",
                ) from None
            self.requests += 1
            rows = sorted(response.data, key=lambda d: d.index)
            parts.append(np.asarray([r.embedding for r in rows], dtype=np.float32))
            if progress:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        if not parts:
            return np.empty((0, 0), np.float32)
        vectors = np.concatenate(parts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-12)

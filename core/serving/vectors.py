"""Output forms of embeddings: shortened (Matryoshka) and base64."""

from __future__ import annotations

import base64

import numpy as np


def shorten(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first ``dimensions`` of each row, L2-normalized again (zero rows stay zero)."""
    head = np.ascontiguousarray(vectors[:, :dimensions], dtype=np.float32)
    norms = np.linalg.norm(head, axis=1, keepdims=True)
    return head / np.where(norms > 0, norms, 1.0)


def to_base64(vector: np.ndarray) -> str:
    """Little-endian float32 bytes in base64, as OpenAI's ``encoding_format="base64"``."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")

"""The two NUDGE updates in closed form, on a matrix of document embeddings.

Both maximize the summed similarity between each document and the training queries it
answers, ``g_d = sum of those queries' embeddings``, under a bound on the change:

- NUDGE-M: ``max g_d · (e_d + Δ)`` with ``||Δ|| ≤ γ``, so ``e'_d = e_d + γ g_d / ||g_d||``;
  the result is not normalized and scores are inner products.
- NUDGE-N: ``max g_d · e'`` with ``||e'|| = 1`` and ``||e' - e_d||² ≤ γ``. The optimum is
  ``g_d / ||g_d||`` when that is inside the cap around ``e_d``; otherwise it lies on the
  cap's rim, in the plane of ``e_d`` and ``g_d``: ``e' = c e_d + sqrt(1 - c²) z`` with
  ``c = 1 - γ / 2`` and ``z`` the unit part of ``g_d`` orthogonal to ``e_d``.

Both take unit-length document embeddings. Documents without training queries (``g_d = 0``)
keep their embedding.

References:
    Zeighami, Wellmer, Parameswaran, "NUDGE: Lightweight Non-Parametric Fine-Tuning of
    Embeddings for Retrieval", 2024 (arXiv:2409.02343).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from core.nudge.spec import Variant

EPS = 1e-12


def normalize(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.where(norms > EPS, norms, 1.0)).astype(np.float32)


def query_sums(
    doc_ids: Sequence[str],
    answers: Mapping[str, Sequence[str]],
    query_vecs: Mapping[str, np.ndarray],
) -> np.ndarray:
    """``g_d`` for every document: the sum of the embeddings of the queries it answers.

    ``answers`` maps query id -> relevant doc ids; documents outside ``doc_ids`` are ignored.
    """
    dim = len(next(iter(query_vecs.values()))) if query_vecs else 0
    row = {d: i for i, d in enumerate(doc_ids)}
    sums = np.zeros((len(doc_ids), dim), np.float32)
    for qid, docs in answers.items():
        for d in docs:
            if d in row:
                sums[row[d]] += query_vecs[qid]
    return sums


def nudge_m(docs: np.ndarray, sums: np.ndarray, step: float) -> np.ndarray:
    """NUDGE-M: each (unit) document moves ``step`` along the direction of its query sum."""
    return (docs + step * normalize(sums)).astype(np.float32)


def nudge_n(docs: np.ndarray, sums: np.ndarray, step: float) -> np.ndarray:
    """NUDGE-N: unit embeddings moved toward their query sum, ``||e' - e||² ≤ step``."""
    target = normalize(sums)
    cos = np.einsum("ij,ij->i", docs, target)
    ortho = target - cos[:, None] * docs
    ortho_norm = np.linalg.norm(ortho, axis=1)
    c = max(1.0 - step / 2.0, -1.0)
    rim = (
        c * docs
        + np.sqrt(1.0 - c * c) * ortho / np.where(ortho_norm > EPS, ortho_norm, 1.0)[:, None]
    )
    has_queries = np.linalg.norm(sums, axis=1) > EPS
    inside = cos >= c  # the optimum itself is within reach
    out = np.where(inside[:, None], target, rim)
    movable = has_queries & (inside | (ortho_norm > EPS))
    return np.where(movable[:, None], out, docs).astype(np.float32)


def nudge(variant: Variant, docs: np.ndarray, sums: np.ndarray, step: float) -> np.ndarray:
    """Apply ``variant`` with ``step`` to unit-length ``docs``; ``step == 0`` returns them."""
    return nudge_n(docs, sums, step) if variant == "nudge-n" else nudge_m(docs, sums, step)

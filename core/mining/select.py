"""Choosing one query's negatives from its ranked candidates: a pure function, no model needed."""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np

from core.mining.spec import MiningSpec

FILTERS = ("positive", "duplicate_text", "window", "max_score", "margin", "sampling")
"""Why a candidate was not kept, in the order the checks apply: each counts under the first."""
KEPT = 0
CODE = {name: i + 1 for i, name in enumerate(FILTERS)}


@dataclass(frozen=True)
class Selection:
    """The negatives chosen for one query (best rank first) and why the others were dropped."""

    ids: list[str]
    ranks: list[int]
    scores: list[float]
    removed: dict[str, int]

    @property
    def candidates(self) -> int:
        return len(self.ids) + sum(self.removed.values())


def margin_ceiling(positive_scores: Sequence[float], spec: MiningSpec) -> float:
    """The highest score a negative may have given the query's positives (``inf``: no limit).

    Uses the lowest positive score ``p``, as sentence-transformers does: ``p - |p| *
    relative_margin`` and ``p - absolute_margin``, whichever is lower.
    """
    if not len(positive_scores):
        return math.inf
    p = float(min(positive_scores))
    ceiling = math.inf
    if spec.relative_margin is not None:
        ceiling = p - abs(p) * spec.relative_margin
    if spec.absolute_margin is not None:
        ceiling = min(ceiling, p - spec.absolute_margin)
    return ceiling


def select_negatives(
    ids: Sequence[str],
    scores: Sequence[float] | np.ndarray,
    *,
    positives: Collection[str],
    duplicates: Collection[str],
    positive_scores: Sequence[float],
    spec: MiningSpec,
    rng: np.random.Generator | None = None,
) -> Selection:
    """Filter ``ids`` (ranked best first, ``scores`` aligned) and sample the negatives.

    ``positives`` are the query's known positives (any split), ``duplicates`` the documents
    whose text equals a positive's or the query's, ``positive_scores`` the scores of its
    positives in the mined split. ``rng`` is needed for random sampling only.
    """
    n = len(ids)
    values = np.asarray(scores, dtype=np.float32)[:n]
    ranks = np.arange(n)
    reason = np.full(n, KEPT, dtype=np.int8)
    _mark(reason, np.array([d in positives for d in ids], dtype=bool), "positive")
    _mark(reason, np.array([d in duplicates for d in ids], dtype=bool), "duplicate_text")
    _mark(reason, (ranks < spec.range_min) | (ranks >= spec.range_max), "window")
    if spec.max_score is not None:
        _mark(reason, values > spec.max_score, "max_score")
    _mark(reason, values > margin_ceiling(positive_scores, spec), "margin")
    survivors = np.flatnonzero(reason == KEPT)
    chosen = _sample(survivors, spec, rng)
    _mark(reason, np.isin(ranks, chosen, invert=True), "sampling")
    counts = np.bincount(reason, minlength=len(FILTERS) + 1)
    return Selection(
        ids=[ids[i] for i in chosen],
        ranks=chosen.tolist(),
        scores=values[chosen].tolist(),
        removed={name: int(counts[CODE[name]]) for name in FILTERS},
    )


def _sample(survivors: np.ndarray, spec: MiningSpec, rng: np.random.Generator | None) -> np.ndarray:
    if spec.sampling == "top" or len(survivors) <= spec.num_negatives:
        return survivors[: spec.num_negatives]
    if rng is None:
        raise ValueError("random sampling needs an rng")
    return survivors[np.sort(rng.choice(len(survivors), spec.num_negatives, replace=False))]


def _mark(reason: np.ndarray, hit: np.ndarray, name: str) -> None:
    """Give ``name`` as the reason of each still-kept candidate where ``hit`` is true."""
    reason[hit & (reason == KEPT)] = CODE[name]

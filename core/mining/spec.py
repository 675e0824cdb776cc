"""What to mine: the rank window, how many negatives, how to sample them and what to drop."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from core.errors import InvalidInput
from core.indexing.faiss_index import IndexSpec
from core.safe_values import check_range

Sampling = Literal["random", "top"]
SAMPLINGS: tuple[Sampling, ...] = ("random", "top")


@dataclass(frozen=True)
class MiningSpec:
    """Hard-negative mining settings, with defaults chosen by measurement.

    Ranks count from 0 over the list retrieved for the query (positives included), as in
    FlagEmbedding's ``hn_mine``: a negative has ``range_min <= rank < range_max``. A candidate
    is dropped when it is a positive of the query in any split, when its text equals a
    positive's or the query's, when it scores above ``max_score``, or when it scores above the
    margin ceiling of the query's lowest positive score ``p`` (as sentence-transformers'
    ``mine_hard_negatives``): ``p - |p| * relative_margin`` and ``p - absolute_margin``.
    ``sampling="random"`` draws ``num_negatives`` of the survivors (seeded per query id, so
    the result does not depend on batching); ``"top"`` keeps the best-ranked survivors.

    Why these defaults (``python bench/mine.py --sweep``: SciFact train, 809 queries, 919
    positives, 5,183 documents, all-MiniLM-L6-v2). Unlabeled positives were simulated by
    hiding each positive of the 77 multi-positive queries in turn (187 trials): "pooled" is
    how many hidden positives survive the filters into the pool sampled from, "mined" how
    many end up as negatives.

    - ``range_min=10``: 78.6% of positives rank 0-9 (14.9% at 10-99, 6.5% at 100+), so
      unlabeled ones sit there too. Skipping ranks 0-9 cuts pooled hidden positives from
      177 to 32 of 187 (0.96% -> 0.19% of the pool) and mined ones from 8 to 2 (random).
    - ``sampling="random"``: "top" gives harder negatives (mean score 0.429 vs 0.364, the
      positives' mean is 0.567) but mines 4x the hidden positives (8 vs 2 of 187; 0.9% vs
      0.2% of the negatives). With range_min 0 and no margin, "top" mines 132 of 187.
    - ``relative_margin=0.05``: halves the hidden positives left in the window (32 -> 17 of
      187 pooled; top sampling mines 8 instead of 12) and leaves the kept scores as they
      were (mean 0.364 vs 0.366). Its cost: 80 of 809 queries (those whose positive ranks
      below nearly all of the window) get no negative and fall back to in-batch ones.
      ``absolute_margin=0.05`` removes about as much but empties 112 queries.
    - ``range_max=100``: a 10-50 window gives harder negatives (0.392) but empties 111
      queries; 10-200 gives easier ones (0.332).
    - ``max_score`` off: an absolute ceiling is model-specific; at 0.6 it removes 73 of
      80,900 candidates for this model.
    - ``num_negatives=5``: 4.50 per query on average (7 gives 6.30, same scores); negatives
      are listed best rank first, so a trainer that uses fewer takes the hardest sampled.

    Args:
        split: the split whose queries get negatives; their positives set the margin.
        range_min: first rank a negative may have (skips the likely unlabeled positives).
        range_max: ranks retrieved per query; a negative ranks below it.
        num_negatives: negatives per query (fewer when fewer candidates survive).
        sampling: ``"random"`` within the window or ``"top"``.
        relative_margin: drop candidates above ``p - |p| * relative_margin``; None: off.
        absolute_margin: drop candidates above ``p - absolute_margin``; None: off.
        max_score: drop candidates scoring above this; None: off.
        seed: seed of the random sampling.
        batch_size: queries searched at once; memory is O(batch_size * range_max).
        index: the Faiss index over the corpus (exact flat up to 200k documents).
    """

    split: str = "train"
    range_min: int = 10
    range_max: int = 100
    num_negatives: int = 5
    sampling: Sampling = "random"
    relative_margin: float | None = 0.05
    absolute_margin: float | None = None
    max_score: float | None = None
    seed: int = 42
    batch_size: int = 1024
    index: IndexSpec = field(default_factory=IndexSpec)

    def __post_init__(self) -> None:
        check_range(self.range_max, 1, 100_000, param="range_max")
        check_range(self.seed, 0, 2**32 - 1, param="seed")
        check_range(self.batch_size, 1, 1 << 20, param="batch_size")
        if self.range_min < 0 or self.range_max <= self.range_min:
            raise InvalidInput(
                f"need 0 <= range_min < range_max, got {self.range_min} and {self.range_max}",
                param="range_min",
            )
        if not 1 <= self.num_negatives <= self.range_max - self.range_min:
            raise InvalidInput(
                f"num_negatives must be between 1 and range_max - range_min "
                f"({self.range_max - self.range_min}), got {self.num_negatives}",
                param="num_negatives",
            )
        if self.sampling not in SAMPLINGS:
            raise InvalidInput(
                f"sampling must be one of {', '.join(SAMPLINGS)}, got '{self.sampling}'",
                param="sampling",
            )
        if self.relative_margin is not None and not 0 <= self.relative_margin < 1:
            raise InvalidInput("relative_margin must be in [0, 1)", param="relative_margin")
        for name in ("absolute_margin", "max_score"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise InvalidInput(f"{name} must be a finite number", param=name)
        if self.batch_size < 1:
            raise InvalidInput("batch_size must be >= 1", param="batch_size")

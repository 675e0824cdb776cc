"""Fusing first-stage and reranker scores, with the weight chosen on a validation split.

Per query, both score lists are min-max normalized over the candidates, then
``fused = (1 - w) * first + w * reranker``. ``w = 0`` keeps the first-stage order exactly,
``w = 1`` is the raw reranked order. The weight is the one of ``WEIGHTS`` with the best
validation nDCG@10, the smallest on ties: a fused pipeline is never worse than its first stage
on the split that chose it, and a reranker that does not help gets ``w = 0``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.datasets.model import Qrels
from core.evaluation.metrics import Run, evaluate_run

WEIGHTS: tuple[float, ...] = tuple(i / 20 for i in range(21))
METRIC = "ndcg@10"


def normalized(scores: dict[str, float]) -> dict[str, float]:
    """Scores mapped onto [0, 1] by the list's min and max (all 0 when they are equal)."""
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    span = high - low
    return {d: (s - low) / span if span > 0 else 0.0 for d, s in scores.items()}


def fuse(first: Run, reranked: Run, weight: float) -> Run:
    """The fused run of the queries in ``first``; a candidate the reranker lacks scores 0."""
    out: Run = {}
    for qid, scores in first.items():
        a, b = normalized(scores), normalized(reranked.get(qid, {}))
        out[qid] = {d: (1 - weight) * a[d] + weight * b.get(d, 0.0) for d in scores}
    return out


@dataclass(frozen=True)
class FusionChoice:
    """The weight chosen on validation and the metrics of the three lists there."""

    weight: float
    metric: str
    first_stage: dict[str, float]
    reranked: dict[str, float]
    fused: dict[str, float]
    curve: list[tuple[float, float]]  # (weight, validation metric)

    @property
    def helps(self) -> bool:
        """Whether fusing with the reranker beat the first stage on validation."""
        return self.weight > 0 and self.fused[self.metric] > self.first_stage[self.metric]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "helps": self.helps}


def choose_weight(
    first: Run, reranked: Run, qrels: Qrels, *, weights: tuple[float, ...] = WEIGHTS
) -> FusionChoice:
    """The fusion weight with the best validation ``METRIC`` (the smallest on ties)."""
    curve: list[tuple[float, float]] = []
    best: tuple[float, dict[str, float]] | None = None
    for weight in sorted(weights):
        means, _ = evaluate_run(fuse(first, reranked, weight), qrels)
        curve.append((weight, means[METRIC]))
        if best is None or means[METRIC] > best[1][METRIC] + 1e-12:
            best = (weight, means)
    assert best is not None
    first_means, _ = evaluate_run(first, qrels)
    reranked_means, _ = evaluate_run(reranked, qrels)
    return FusionChoice(best[0], METRIC, first_means, reranked_means, best[1], curve)


def verdict(weight: float, first_stage: float | None = None, fused: float | None = None) -> str:
    """One plain sentence: whether to deploy the reranker on this first stage, from the weight
    and, when known, the validation nDCG@10 of the first stage alone and fused."""
    if weight == 0 or (first_stage is not None and fused is not None and fused <= first_stage):
        return (
            "the reranker did not help this first stage (fusion weight 0 on validation): "
            "do not deploy it; the first stage alone is as good"
        )
    if first_stage is None or fused is None:
        return (
            f"fusion weight {weight:.2f} from the reranker's own fine-tune; not validated on "
            "this first stage"
        )
    return (
        f"the reranker helps: validation nDCG@10 {fused:.4f} fused (weight {weight:.2f}) "
        f"against {first_stage:.4f} for the first stage alone"
    )

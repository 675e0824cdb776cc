"""What a NUDGE run is asked to do (``NudgeSpec``) and what it reports (``NudgeReport``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from core.errors import InvalidInput
from core.safe_values import check_range

Variant = Literal["nudge-n", "nudge-m"]

# Candidate step sizes tried on the validation queries when the spec gives none.
DEFAULT_STEPS: dict[str, tuple[float, ...]] = {
    "nudge-n": tuple(round(0.02 * i, 2) for i in range(51)),  # ||e' - e||² up to 1
    "nudge-m": tuple(round(0.05 * i, 2) for i in range(41)),  # ||Δ|| up to 2
}


@dataclass(frozen=True)
class NudgeSpec:
    """One NUDGE run over a dataset's corpus.

    The step is chosen on validation queries only: ``val_split``, or when it is ``None`` a
    ``val_fraction`` of the ``train_split`` queries held out by query (seeded, the same
    split the fine-tune jobs use). With ``refit`` the documents then move toward all
    ``train_split`` queries, validation ones included, with the chosen step. The test split
    is scored after the step is fixed and never read before.
    """

    variant: Variant = "nudge-n"
    train_split: str = "train"
    val_split: str | None = None
    val_fraction: float = 0.2
    seed: int = 0
    test_split: str | None = "test"
    steps: tuple[float, ...] | None = None
    refit: bool = True
    metric: str = "ndcg@10"  # what the step maximizes on the validation queries

    def __post_init__(self) -> None:
        if self.variant not in get_args(Variant):
            raise InvalidInput(f"variant must be one of {get_args(Variant)}", param="variant")
        if not 0 < self.val_fraction < 1:
            raise InvalidInput("val_fraction must be between 0 and 1", param="val_fraction")
        if self.steps is not None and not self.steps:
            raise InvalidInput("steps must be non-negative sizes", param="steps")
        for step in self.steps or ():
            check_range(step, 0, 100, param="steps")
        check_range(self.seed, 0, 2**32 - 1, param="seed")
        name, _, k = self.metric.partition("@")
        if name not in ("ndcg", "recall", "mrr", "map", "hit") or not k.isdigit() or int(k) < 1:
            raise InvalidInput(f"unknown metric '{self.metric}'", param="metric")
        if self.test_split is not None and self.test_split in (self.train_split, self.val_split):
            raise InvalidInput("the test split must differ from train and val", param="test_split")

    @property
    def candidates(self) -> tuple[float, ...]:
        return self.steps if self.steps is not None else DEFAULT_STEPS[self.variant]

    @property
    def k(self) -> int:
        return int(self.metric.partition("@")[2])


@dataclass(frozen=True)
class NudgeReport:
    """How many documents moved, the chosen step, and metrics before / after."""

    variant: Variant
    model: str
    model_fingerprint: str
    dataset: str
    step: float
    docs_moved: int
    num_documents: int
    train_queries: int  # queries the final embeddings were moved toward
    val_queries: int
    metric: str
    val_before: dict[str, float]
    val_after: dict[str, float]
    test_before: dict[str, float] = field(default_factory=dict)
    test_after: dict[str, float] = field(default_factory=dict)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (step, val metric)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

"""The methods a comparison can run, what each one needs, and what it costs at serving time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CompareMethod = Literal[
    "base", "full", "lora", "adapter", "colbert", "nudge-n", "nudge-m", "full+nudge-n"
]
DEFAULT_METHODS: tuple[CompareMethod, ...] = (
    "base",
    "full",
    "lora",
    "adapter",
    "nudge-n",
    "full+nudge-n",
)


@dataclass(frozen=True)
class MethodInfo:
    """How a method runs: an ``eval`` of the base model, a ``finetune`` (with ``finetune`` its
    method) or a ``nudge`` (``variant``) of the base model or of the model ``builds_on`` made.

    ``reencode``: whether adopting it means encoding the whole corpus again with a new model.
    """

    job_type: Literal["eval", "finetune", "nudge"]
    reencode: bool
    finetune: Literal["full", "lora", "adapter", "colbert"] | None = None
    variant: Literal["nudge-n", "nudge-m"] | None = None
    builds_on: CompareMethod | None = None


METHODS: dict[CompareMethod, MethodInfo] = {
    "base": MethodInfo("eval", reencode=False),
    "full": MethodInfo("finetune", reencode=True, finetune="full"),
    "lora": MethodInfo("finetune", reencode=True, finetune="lora"),
    # the query adapter changes the query side only: documents keep their base embeddings
    "adapter": MethodInfo("finetune", reencode=False, finetune="adapter"),
    # late interaction: a new model and a token index of the whole corpus (core/indexing)
    "colbert": MethodInfo("finetune", reencode=True, finetune="colbert"),
    # NUDGE rewrites the stored vectors of documents with training queries, no model run
    "nudge-n": MethodInfo("nudge", reencode=False, variant="nudge-n"),
    "nudge-m": MethodInfo("nudge", reencode=False, variant="nudge-m"),
    "full+nudge-n": MethodInfo("nudge", reencode=True, variant="nudge-n", builds_on="full"),
}

BASELINE = "baseline:"  # method name prefix of an extra model scored beside the methods
BASELINE_INFO = MethodInfo("eval", reencode=True)


def method_info(method: str) -> MethodInfo:
    """A method's info; ``baseline:<model>`` is an eval of another model (e.g. a remote API)."""
    return BASELINE_INFO if method.startswith(BASELINE) else METHODS[method]  # type: ignore[index]

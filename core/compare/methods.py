"""The methods a comparison can run, what each one needs, and what it costs at serving time."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CompareMethod = Literal[
    "base",
    "full",
    "lora",
    "adapter",
    "colbert",
    "nudge-n",
    "nudge-m",
    "full+nudge-n",
    "adapter+nudge-n",
    "lora+nudge-n",
    "full+merge",
    "adapter+merge",
    "full+merge+nudge-n",
    "adapter+merge+nudge-n",
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
    method), a ``merge`` of the model ``builds_on`` made with the base (weights chosen on
    validation and the forgetting set), or a ``nudge`` (``variant``) of the base model or of
    the model ``builds_on`` made.

    ``reencode``: whether adopting it means encoding the whole corpus again with a new model.
    """

    job_type: Literal["eval", "finetune", "nudge", "merge"]
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
    "adapter+nudge-n": MethodInfo("nudge", reencode=False, variant="nudge-n", builds_on="adapter"),
    "lora+nudge-n": MethodInfo("nudge", reencode=True, variant="nudge-n", builds_on="lora"),
    # LM-Cocktail: the tuned weights averaged with the base's against forgetting
    "full+merge": MethodInfo("merge", reencode=True, builds_on="full"),
    "adapter+merge": MethodInfo("merge", reencode=False, builds_on="adapter"),
    "full+merge+nudge-n": MethodInfo(
        "nudge", reencode=True, variant="nudge-n", builds_on="full+merge"
    ),
    "adapter+merge+nudge-n": MethodInfo(
        "nudge", reencode=False, variant="nudge-n", builds_on="adapter+merge"
    ),
}
RERANKED = "+rerank"  # suffix of a row that reranks a method's candidates with the reranker

BASELINE = "baseline:"  # method name prefix of an extra model scored beside the methods
BASELINE_INFO = MethodInfo("eval", reencode=True)


def method_info(method: str) -> MethodInfo:
    """A method's info; ``baseline:<model>`` is an eval of another model (e.g. a remote API);
    ``<method>+rerank`` is its method's own info (the reranking happens when scoring)."""
    if method.startswith(BASELINE):
        return BASELINE_INFO
    return METHODS[method.removesuffix(RERANKED)]  # type: ignore[index]

"""The ``embedtune eval`` evaluator as a sentence-transformers evaluator, for use while training."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sentence_transformers.base.evaluation import BaseEvaluator

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.report import PRIMARY_METRIC
from core.models.embedder import wrap_embedder
from core.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


class RetrievalEvaluator(BaseEvaluator):
    """Scores the model under training on one split of a ``RetrievalDataset``, exactly as
    ``core.evaluation.evaluator.evaluate`` (and so ``embedtune eval``) does.

    Args:
        dataset: corpus, queries and judgments.
        split: the judged split to score (the validation split while training).
        model: the base model's resolved reference; its config (instructions, normalization)
            is the one the trained model is used with.
        batch_size: encoding batch size.

    Inputs:
        Called by ``SentenceTransformerTrainer`` with the model under training; returns every
        metric of the report (``ndcg@10``, ``recall@10``, ...) with ``ndcg@10`` primary.

    Example:
        ::

            evaluator = RetrievalEvaluator(ds, "val", resolve_model("all-MiniLM-L6-v2"))
            trainer = SentenceTransformerTrainer(model, args, train, loss=loss, evaluator=evaluator)
    """

    def __init__(
        self, dataset: RetrievalDataset, split: str, model: ResolvedModel, batch_size: int = 64
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.split = split
        self.model = model
        self.batch_size = batch_size
        self.primary_metric = PRIMARY_METRIC
        self.seconds = 0.0  # time spent evaluating, excluded from training throughput

    def __call__(
        self,
        model: SentenceTransformer,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        start = time.perf_counter()
        embedder = wrap_embedder(self.model, model, f"training-step-{steps}", self.batch_size)
        report = evaluate(self.dataset, embedder, EvalSpec(split=self.split, count_truncated=False))
        self.seconds += time.perf_counter() - start
        return dict(report.metrics)

"""Validation of a cross-encoder under training: it reranks the first stage's candidates."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from sentence_transformers.base.evaluation import BaseEvaluator

from core.datasets.model import RetrievalDataset
from core.evaluation.metrics import K_VALUES, Run, evaluate_run
from core.models.resolve import ResolvedModel
from core.reranking.evaluate import judged_qrels, rerank_run
from core.reranking.reranker import Reranker

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


class RerankValidator(BaseEvaluator):
    """Scores a cross-encoder by reranking fixed first-stage candidates of one split, with the
    metrics of ``embedtune eval`` (``ndcg@10`` primary), as the retrieve → rerank evaluation
    does.

    Args:
        dataset: corpus, queries and judgments.
        split: the judged split whose candidates are reranked (validation while training).
        candidates: the first stage's run on that split (query id -> doc id -> score).
        model: the reranker's resolved reference (named in the results only).
        batch_size: pairs per forward pass.

    Inputs:
        Called by ``CrossEncoderTrainer`` with the model under training; returns every metric
        (``ndcg@10``, ``mrr@10``, ``map@100``, ...) of the reranked candidates.

    Example:
        ::

            validator = RerankValidator(ds, "val", base_report.run(), resolved)
            trainer = CrossEncoderTrainer(model, args, train, loss=loss, evaluator=validator)
    """

    def __init__(
        self,
        dataset: RetrievalDataset,
        split: str,
        candidates: Run,
        model: ResolvedModel,
        batch_size: int = 32,
    ) -> None:
        super().__init__()
        self.dataset, self.split, self.model = dataset, split, model
        self.qrels = judged_qrels(dataset, split)
        self.candidates = {q: candidates.get(q, {}) for q in self.qrels}
        self.width = max((len(c) for c in self.candidates.values()), default=1)
        self.batch_size = batch_size
        self.primary_metric = "ndcg@10"
        self.seconds = 0.0  # time spent validating, excluded from training throughput
        self.runs: dict[int, Run] = {}  # the reranked run of each validated step

    def __call__(
        self,
        model: CrossEncoder,
        output_path: str | None = None,
        epoch: float = -1,
        steps: int = -1,
    ) -> dict[str, float]:
        start = time.perf_counter()
        reranker = Reranker(self.model, model, f"training-step-{steps}", self.batch_size)
        run = rerank_run(self.dataset, self.candidates, reranker, self.width).run
        self.runs[steps] = run
        means, _ = evaluate_run(run, self.qrels, K_VALUES)
        self.seconds += time.perf_counter() - start
        return means

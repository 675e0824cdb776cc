"""The data steps of a fine-tune before training (embedder or reranker): the validation split
held out of training, and hard negatives mined with the product's defaults."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from core.datasets.model import RetrievalDataset
from core.datasets.split import hold_out
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.training.hooks import CancelCheck, Reporter


def held_out_validation(
    ds: RetrievalDataset, splits: tuple[str, str | None], reporter: Reporter
) -> tuple[RetrievalDataset, str | None, int]:
    """The validation split (None, with a note, when ``ds`` lacks the one asked for), ``ds``
    without the training judgments of its queries, and how many queries were in both."""
    train, wanted = splits
    val = wanted if wanted in ds.qrels else None
    if wanted and val is None:
        reporter.on_event(f"no '{wanted}' split: training without validation")
    overlap = 0
    if val and val != train:
        ds, overlap = hold_out(ds, train, val)
    return ds, val, overlap


def mine_with_defaults(
    ds: RetrievalDataset,
    split: str,
    embedder: Embedder,
    num_negatives: int,
    *,
    cache: EmbeddingCache | None,
    reporter: Reporter,
    should_cancel: CancelCheck | None,
    progress: Callable[[str, int, int], None] | None = None,
) -> RetrievalDataset:
    """Hard negatives for the ``split`` queries, mined with ``embedder`` and the ``MiningSpec``
    defaults (at least one per query), so every entry point trains the product's recipe."""
    from core.mining import MiningSpec, mine_negatives

    mining = replace(MiningSpec(), split=split, num_negatives=max(num_negatives, 1))
    mined, report = mine_negatives(
        ds, embedder, mining, cache=cache, progress=progress, should_cancel=should_cancel
    )
    reporter.on_event(
        f"mined {report.negatives} hard negatives for {report.queries} '{split}' queries "
        f"({report.queries_without_negatives} kept none)"
    )
    return mined

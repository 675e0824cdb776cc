"""Split one split's judgments in two by query, deterministically."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput


def split_by_query(
    ds: RetrievalDataset,
    *,
    source: str = "train",
    val_fraction: float = 0.2,
    seed: int = 0,
    names: tuple[str, str] = ("train", "val"),
) -> RetrievalDataset:
    """A copy of ``ds`` whose ``source`` split is replaced by two query-disjoint splits ``names``.

    Queries are ordered by a hash of ``seed`` and their id, so the result depends only on the
    seed and the set of queries, not on dict order; ``round(n * val_fraction)`` go to the
    second split. Other splits are kept; the corpus and queries are shared, not copied.
    """
    qrels = ds.split_qrels(source)
    if not 0 < val_fraction < 1:
        raise InvalidInput("val_fraction must be between 0 and 1", param="val_fraction")
    taken = set(ds.splits) - {source}
    if names[0] == names[1] or taken & set(names):
        raise InvalidInput(
            f"split names {names} must differ from each other and from {sorted(taken)}",
            param="names",
        )
    ranked = sorted(qrels, key=lambda qid: hashlib.sha256(f"{seed}:{qid}".encode()).digest())
    n_val = round(len(ranked) * val_fraction)
    if not 0 < n_val < len(ranked):
        raise InvalidInput(
            f"{len(ranked)} judged queries in '{source}' cannot be split with "
            f"val_fraction={val_fraction} leaving both sides non-empty",
            param="val_fraction",
        )
    val = set(ranked[:n_val])
    new_qrels = {split: judged for split, judged in ds.qrels.items() if split != source}
    new_qrels[names[0]] = {qid: dict(judged) for qid, judged in qrels.items() if qid not in val}
    new_qrels[names[1]] = {qid: dict(judged) for qid, judged in qrels.items() if qid in val}
    return replace(ds, qrels=new_qrels)


def hold_out(ds: RetrievalDataset, train: str, held_out: str) -> tuple[RetrievalDataset, int]:
    """``ds`` without the ``train`` judgments of queries that ``held_out`` judges, and how many
    queries were removed: a query named for evaluation is never trained on."""
    overlap = ds.split_qrels(train).keys() & ds.split_qrels(held_out).keys()
    if not overlap:
        return ds, 0
    kept = {qid: judged for qid, judged in ds.qrels[train].items() if qid not in overlap}
    return replace(ds, qrels={**ds.qrels, train: kept}), len(overlap)


def corpus_subset(ds: RetrievalDataset, split: str, max_docs: int) -> RetrievalDataset:
    """``ds`` with its first ``max_docs`` documents and every document ``split`` judges (a
    smaller corpus for benchmarks; 0 keeps them all)."""
    if not max_docs:
        return ds
    judged = {d for rel in ds.split_qrels(split).values() for d in rel}
    keep = [d for i, d in enumerate(ds.corpus) if i < max_docs or d in judged]
    return replace(ds, corpus={d: ds.corpus[d] for d in keep})

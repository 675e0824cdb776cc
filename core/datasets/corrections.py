"""Corrections from a negative audit: listed negatives that are in fact positives."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from core.datasets.model import RetrievalDataset
from core.datasets.validate import Issues


@dataclass(frozen=True)
class Correction:
    """Document ``doc_id`` is relevant to query ``query_id``, not a negative."""

    query_id: str
    doc_id: str


def apply_corrections(
    ds: RetrievalDataset, corrections: Iterable[Correction], *, split: str, grade: int = 1
) -> RetrievalDataset:
    """A copy of ``ds`` where each corrected document is no longer a negative of its query
    and is judged relevant (``grade``) in ``split``; ``ds`` is left as it was.

    Raises ``DatasetInvalid`` naming every correction that does not apply: an unknown query
    or document (``unknown_query_id``, ``unknown_doc_id``), a query ``split`` does not judge
    (``query_not_in_split``), a document that is not a negative of the query
    (``not_a_negative``)."""
    wanted = list(dict.fromkeys(corrections))
    issues = Issues()
    judged = ds.split_qrels(split)
    for i, fix in enumerate(wanted):
        where = f"corrections.{i}"
        if fix.query_id not in ds.queries:
            issues.add(
                "unknown_query_id", f"query '{fix.query_id}' is not in the dataset", field=where
            )
        elif fix.query_id not in judged:
            issues.add(
                "query_not_in_split",
                f"split '{split}' does not judge query '{fix.query_id}'",
                field=where,
            )
        if fix.doc_id not in ds.corpus:
            issues.add(
                "unknown_doc_id", f"document '{fix.doc_id}' is not in the corpus", field=where
            )
        elif fix.doc_id not in ds.negatives.get(fix.query_id, []):
            issues.add(
                "not_a_negative",
                f"document '{fix.doc_id}' is not a negative of query '{fix.query_id}'",
                field=where,
            )
    issues.raise_if_any()
    qrels = {q: dict(docs) for q, docs in judged.items()}
    negatives = {q: list(docs) for q, docs in ds.negatives.items()}
    for fix in wanted:
        qrels[fix.query_id][fix.doc_id] = grade
        negatives[fix.query_id] = [d for d in negatives[fix.query_id] if d != fix.doc_id]
    return replace(
        ds,
        qrels={**ds.qrels, split: qrels},
        negatives={q: docs for q, docs in negatives.items() if docs},
    )

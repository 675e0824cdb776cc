"""Cross-encoder training tables from a ``RetrievalDataset``: pairs, lists, teacher margins.

Every table starts from the same rows as a bi-encoder fine-tune (``training_triples``): each
(query, positive) of the split with the query's hard negatives in mined order, topped up with
seeded random documents. Rerank rows ``{query, positive: [...], negative: [...]}`` read as
``pairs`` give the same shape.
"""

from __future__ import annotations

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.training.examples import training_triples
from core.training.hooks import Teacher


def _per_query(
    ds: RetrievalDataset, split: str, num_negatives: int, seed: int
) -> dict[str, tuple[list[str], list[str]]]:
    """query id -> (positives, negatives), each in order and without repeats."""
    out: dict[str, tuple[list[str], list[str]]] = {}
    for row in training_triples(ds, split, num_negatives, seed=seed):
        positives, negatives = out.setdefault(row.query_id, ([], []))
        positives.append(row.positive_id)
        negatives.extend(n for n in row.negative_ids if n not in negatives)
    return out


def pair_columns(
    ds: RetrievalDataset, split: str, num_negatives: int, *, seed: int = 0
) -> dict[str, list]:
    """``query``, ``document``, ``label`` (1.0 positive, 0.0 negative): BCE's table."""
    columns: dict[str, list] = {"query": [], "document": [], "label": []}
    for qid, (positives, negatives) in _per_query(ds, split, num_negatives, seed).items():
        for did, label in [*((p, 1.0) for p in positives), *((n, 0.0) for n in negatives)]:
            columns["query"].append(ds.queries[qid].text)
            columns["document"].append(ds.corpus[did].full_text)
            columns["label"].append(label)
    return columns


def list_columns(
    ds: RetrievalDataset, split: str, num_negatives: int, *, seed: int = 0
) -> dict[str, list]:
    """``query``, ``docs`` (positives then negatives), ``labels``: the listwise losses' table."""
    columns: dict[str, list] = {"query": [], "docs": [], "labels": []}
    for qid, (positives, negatives) in _per_query(ds, split, num_negatives, seed).items():
        columns["query"].append(ds.queries[qid].text)
        columns["docs"].append([ds.corpus[d].full_text for d in [*positives, *negatives]])
        columns["labels"].append([1] * len(positives) + [0] * len(negatives))
    return columns


def margin_columns(
    ds: RetrievalDataset, split: str, num_negatives: int, teacher: Teacher, *, seed: int = 0
) -> dict[str, list]:
    """``query``, ``positive``, ``negative_1``…, ``label`` (the teacher's margins
    ``s(q, p) - s(q, n_i)``, one per negative): MarginMSE's table."""
    triples = training_triples(ds, split, num_negatives, seed=seed)
    width = min(len(t.negative_ids) for t in triples)
    if width == 0:
        raise InvalidInput("margin_mse needs at least one negative per query", param="loss")
    pairs = [(t.query_id, d) for t in triples for d in (t.positive_id, *t.negative_ids[:width])]
    scores = teacher(pairs)
    columns: dict[str, list] = {"query": [], "positive": []}
    columns.update({f"negative_{i + 1}": [] for i in range(width)})
    columns["label"] = []
    for n, t in enumerate(triples):
        row = scores[n * (width + 1) : (n + 1) * (width + 1)]
        columns["query"].append(ds.queries[t.query_id].text)
        columns["positive"].append(ds.corpus[t.positive_id].full_text)
        for i in range(width):
            columns[f"negative_{i + 1}"].append(ds.corpus[t.negative_ids[i]].full_text)
        columns["label"].append([row[0] - s for s in row[1:]])
    return columns


def dataset_teacher(ds: RetrievalDataset) -> Teacher:
    """The dataset's own scores (scored pairs, FlagEmbedding ``pos_scores``/``neg_scores``) as
    teacher labels; ``InvalidInput`` naming the first pair that has none."""

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        out = []
        for qid, did in pairs:
            value = ds.scores.get(qid, {}).get(did)
            if value is None:
                raise InvalidInput(
                    f"margin_mse without teacher_model needs a score for every training pair; "
                    f"query '{qid}' has none for document '{did}'",
                    code="missing_teacher_score",
                    param="teacher_model",
                )
            out.append(float(value))
        return out

    return score

"""Training examples from a ``RetrievalDataset``: query/positive/negatives rows or scored pairs."""

from __future__ import annotations

import random
from dataclasses import dataclass

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput


@dataclass(frozen=True)
class Triple:
    """One training row by ids: a query, one of its positives, and its hard negatives."""

    query_id: str
    positive_id: str
    negative_ids: tuple[str, ...]


def training_triples(
    ds: RetrievalDataset, split: str, num_negatives: int, *, seed: int = 0
) -> list[Triple]:
    """One row per (query, positive) of ``split``, with ``num_negatives`` negatives each.

    Negatives come from ``ds.negatives`` in their mined order, never a known positive; a query
    with too few is topped up with random corpus documents (seeded), so every row has the same
    columns as MultipleNegativesRankingLoss requires.
    """
    qrels = ds.split_qrels(split)
    rng = random.Random(seed)
    doc_ids = list(ds.corpus)
    rows: list[Triple] = []
    for qid, judged in qrels.items():
        positives = [d for d, grade in judged.items() if grade > 0 and d in ds.corpus]
        if qid not in ds.queries or not positives:
            continue
        known = {d for d, grade in judged.items() if grade > 0}
        for pid in positives:
            negatives = _negatives(ds, qid, known, num_negatives, doc_ids, rng)
            rows.append(Triple(qid, pid, negatives))
    if not rows:
        raise InvalidInput(
            f"split '{split}' has no query with a relevant document to train on", param="split"
        )
    return rows


def _negatives(
    ds: RetrievalDataset,
    qid: str,
    known: set[str],
    count: int,
    doc_ids: list[str],
    rng: random.Random,
) -> tuple[str, ...]:
    mined = [d for d in ds.negatives.get(qid, []) if d not in known and d in ds.corpus]
    chosen = list(dict.fromkeys(mined))[:count]
    while len(chosen) < count and len(doc_ids) > len(known) + len(chosen):
        candidate = rng.choice(doc_ids)
        if candidate not in known and candidate not in chosen:
            chosen.append(candidate)
    return tuple(chosen)


def triple_columns(
    ds: RetrievalDataset, triples: list[Triple], *, cut_query: bool = False
) -> dict[str, list[str]]:
    """Text columns ``anchor``, ``positive``, ``negative_1``… in the order the loss reads them.

    With ``cut_query`` a query found verbatim in its positive is cut out of it (see
    ``without_query``)."""
    width = min(len(t.negative_ids) for t in triples)
    anchors = [ds.queries[t.query_id].text for t in triples]
    positives = [ds.corpus[t.positive_id].full_text for t in triples]
    if cut_query:
        positives = [without_query(q, p) for q, p in zip(anchors, positives, strict=True)]
    columns = {"anchor": anchors, "positive": positives}
    for i in range(width):
        columns[f"negative_{i + 1}"] = [ds.corpus[t.negative_ids[i]].full_text for t in triples]
    return columns


def without_query(query: str, text: str) -> str:
    """``text`` with the first verbatim occurrence of ``query`` cut out.

    A synthesized query copied from its own document (a title, a sentence, a span) would
    otherwise be matched by copying and teach nothing; cut out, the pair asks the model to
    tie the query to the rest of the text, as inverse-cloze training does (Lee et al., 2019,
    "Latent Retrieval for Weakly Supervised Open Domain Question Answering"). A query that is
    the whole text, or not in it, leaves the text as it is."""
    needle = query.strip()
    start = text.find(needle) if needle else -1
    if start < 0:
        return text
    rest = f"{text[:start].rstrip()} {text[start + len(needle) :].lstrip()}".strip()
    return rest or text


def scored_columns(ds: RetrievalDataset, split: str) -> dict[str, list]:
    """Columns ``sentence1``, ``sentence2``, ``score`` from ``ds.scores`` (the split's queries
    when the dataset has that split, else every scored pair)."""
    wanted = set(ds.qrels[split]) if split in ds.qrels else set(ds.scores)
    pairs = [
        (qid, did, score)
        for qid, scored in ds.scores.items()
        if qid in wanted and qid in ds.queries
        for did, score in scored.items()
        if did in ds.corpus
    ]
    if len(pairs) < 2:
        raise InvalidInput("loss 'cosent' needs scored pairs (ds.scores)", param="loss")
    return {
        "sentence1": [ds.queries[q].text for q, _, _ in pairs],
        "sentence2": [ds.corpus[d].full_text for _, d, _ in pairs],
        "score": [float(s) for _, _, s in pairs],
    }

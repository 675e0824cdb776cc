"""Turn kept queries into a dataset split by source document: every chunk of one document is
in one split only, so no test query comes from a document whose chunks were trained on."""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.synthesis.generators import Candidate, source_of

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitSpec:
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0


def split_of(source: str, spec: SplitSpec, *, with_test: bool) -> str:
    """The split of a source document: a seeded hash, so it depends on nothing else."""
    digest = hashlib.sha256(f"{spec.seed}:{source}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    if with_test and u < spec.test_fraction:
        return "test"
    return "val" if u < spec.test_fraction + spec.val_fraction else "train"


def build_dataset(
    corpus: dict[str, Document],
    kept: list[Candidate],
    spec: SplitSpec,
    *,
    name: str,
    user_test: tuple[dict[str, Query], Qrels] | None = None,
) -> tuple[RetrievalDataset, dict[str, int]]:
    """The corpus with the kept queries as train / val / test by source document.

    With ``user_test`` (a user's labeled queries and judgments) those are the test split and
    no synthesized query is drawn for it; synthesized queries on a document the user's test
    judges are dropped (counted as ``on_test_documents``)."""
    queries: dict[str, Query] = {}
    qrels: dict[str, Qrels] = {s: {} for s in SPLITS}
    counts: Counter[str] = Counter()
    test_sources: set[str] = set()
    if user_test is not None:
        test_queries, test_qrels = user_test
        queries.update({q: test_queries[q] for q in test_qrels if q in test_queries})
        qrels["test"] = {q: dict(j) for q, j in test_qrels.items()}
        test_sources = {source_of(corpus[d]) for j in test_qrels.values() for d in j if d in corpus}
    for number, c in enumerate(kept):
        source = source_of(corpus[c.chunk_ids[0]])
        if source in test_sources:
            counts["on_test_documents"] += 1
            continue
        split = split_of(source, spec, with_test=user_test is None)
        qid = f"syn-{number}"
        queries[qid] = Query(qid, c.text)
        qrels[split][qid] = dict.fromkeys(c.chunk_ids, 1)
        counts[split] += 1
        counts[f"generator:{c.generator}"] += 1
    qrels = {s: judged for s, judged in qrels.items() if judged}
    ds = RetrievalDataset(corpus, queries, qrels, name=name, source_format="beir")
    return ds, dict(counts)

"""Pairs, triplets and n-tuples (sentence-transformers style) in .jsonl, .csv or .tsv.

Columns: ``anchor`` (or ``query``, ``question``, ``sentence1``), ``positive`` (or ``pos``,
``answer``, ``sentence2``), optionally ``negative`` (or ``neg``) and ``negative_1`` …
``negative_n`` (``mine_hard_negatives``' n-tuple output), optionally a 0/1 ``label``
(``labeled-pair`` output: a row labelled 0 is a negative, not a relevant document) and a
``query_id`` that keeps queries with equal texts apart. ``positive`` and ``negative`` may hold
lists (open-retrievals rows). Texts get ids from their content; each positive becomes a judgment
(grade 1) of the split, each negative a negative.
"""

from __future__ import annotations

import re
from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.records import Record, write_records
from core.datasets.textids import TextDatasetBuilder, read_text_dataset
from core.datasets.validate import require_valid

FORMAT = "pairs"
NUMBERED = re.compile(r"negative_(\d+)")


def read_pairs(
    path: str | Path, *, split: str = "train", options: ReadOptions | None = None
) -> RetrievalDataset:
    return read_text_dataset(Path(path), split=split, fmt=FORMAT, add=_add, options=options)


def _add(builder: TextDatasetBuilder, record: Record) -> None:
    anchor = record.text(record.key("query"))
    positives = record.texts(record.key("positive"), single=True)
    negatives = record.texts(record.key("negative"), required=False, single=True)
    numbered = sorted(
        (int(m.group(1)), key) for key in record.data if (m := NUMBERED.fullmatch(key))
    )
    for _, key in numbered:
        negatives += record.texts(key, required=False, single=True)
    label = record.label("label") if "label" in record.data else 1
    qid_key = record.key("query_id")
    given_qid = record.ident(qid_key) if qid_key in record.data else None
    if anchor is None or record.failed:
        return
    qid = builder.query(anchor, qid=given_qid)
    for text in positives:
        if label == 1:
            builder.relevant(qid, builder.doc(text))
        else:
            builder.negative(qid, builder.doc(text))
    for text in negatives:
        builder.negative(qid, builder.doc(text))


def write_pairs(ds: RetrievalDataset, path: str | Path, *, split: str = "train") -> None:
    """Triplets (every positive with every negative) when the split has negatives, else pairs.

    A query without negatives in a triplet file gets rows with an empty ``negative``. When two
    queries share a text, a ``query_id`` column keeps them apart.
    """
    require_valid(ds)
    qrels = ds.split_qrels(split)
    triplets = any(ds.negatives.get(qid) for qid in qrels)
    texts = [ds.queries[qid].text for qid in qrels]
    with_ids = len(set(texts)) < len(texts)
    rows: list[dict[str, object]] = []
    for qid, judged in qrels.items():
        anchor = ds.queries[qid].text
        negatives = [ds.corpus[did].full_text for did in ds.negatives.get(qid, [])]
        for did, grade in judged.items():
            if grade <= 0:
                continue
            row = {"anchor": anchor, "positive": ds.corpus[did].full_text}
            if with_ids:
                row["query_id"] = qid
            if not triplets:
                rows.append(row)
            else:
                rows.extend({**row, "negative": neg} for neg in negatives or [None])
    columns = ["anchor", "positive", "negative"] if triplets else ["anchor", "positive"]
    columns += ["query_id"] if with_ids else []
    write_records(Path(path), rows, columns)

"""Pairs, triplets and n-tuples (sentence-transformers style) in .jsonl, .csv or .tsv.

Columns: ``anchor`` (or ``query``, ``question``, ``sentence1``), ``positive`` (or ``pos``,
``answer``, ``sentence2``), optionally ``negative`` (or ``neg``) and ``negative_1`` …
``negative_n`` (``mine_hard_negatives``' n-tuple output), optionally a 0/1 ``label``
(``labeled-pair`` output: a row labelled 0 is a negative, not a relevant document) or ``labels``
beside a list of texts (``labeled-list`` output: one 0/1 per text), and a
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
    labels = _labels(record, len(positives))
    qid_key = record.key("query_id")
    given_qid = record.ident(qid_key) if qid_key in record.data else None
    if anchor is None or record.failed:
        return
    qid = builder.query(anchor, qid=given_qid)
    for text, label in zip(positives, labels, strict=True):
        if label == 1:
            builder.relevant(qid, builder.doc(text))
        else:
            builder.negative(qid, builder.doc(text))
    for text in negatives:
        builder.negative(qid, builder.doc(text))


def _labels(record: Record, count: int) -> list[int]:
    """0/1 per positive: ``labels`` (labeled-list: one per text), else ``label``, else all 1."""
    if "labels" in record.data:
        scores = record.scores("labels", count) or []
        if any(s not in (0, 1) for s in scores):
            record.problem(
                "bad_label",
                "'labels' holds values other than 0 and 1",
                key="labels",
                expected="0 (negative) or 1 (positive) per text",
            )
        return [int(s) for s in scores] if len(scores) == count else [1] * count
    label = record.label("label") if "label" in record.data else 1
    return [label if label is not None else 1] * count


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

"""Pairs and triplets (sentence-transformers style) in .jsonl, .csv or .tsv.

Columns: ``anchor`` (or ``query``), ``positive`` and optionally ``negative``. Texts get ids from
their content; each positive becomes a judgment (grade 1) of the split, each negative a negative.
"""

from __future__ import annotations

from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.datasets.records import Record, write_records
from core.datasets.textids import TextDatasetBuilder, read_text_dataset
from core.datasets.validate import require_valid

FORMAT = "pairs"


def read_pairs(path: str | Path, *, split: str = "train") -> RetrievalDataset:
    return read_text_dataset(Path(path), split=split, fmt=FORMAT, add=_add)


def _add(builder: TextDatasetBuilder, record: Record) -> None:
    anchor = record.text("anchor" if "anchor" in record.data else "query")
    positive = record.text("positive")
    negative = record.text("negative", required=False)
    if anchor is None or positive is None or record.failed:
        return
    qid = builder.query(anchor)
    builder.relevant(qid, builder.doc(positive))
    if negative is not None:
        builder.negative(qid, builder.doc(negative))


def write_pairs(ds: RetrievalDataset, path: str | Path, *, split: str = "train") -> None:
    """Triplets (every positive with every negative) when the split has negatives, else pairs.

    A query without negatives in a triplet file gets rows with an empty ``negative``.
    """
    require_valid(ds)
    qrels = ds.split_qrels(split)
    triplets = any(ds.negatives.get(qid) for qid in qrels)
    rows: list[dict[str, object]] = []
    for qid, judged in qrels.items():
        anchor = ds.queries[qid].text
        negatives = [ds.corpus[did].full_text for did in ds.negatives.get(qid, [])]
        for did, grade in judged.items():
            if grade <= 0:
                continue
            row = {"anchor": anchor, "positive": ds.corpus[did].full_text}
            if not triplets:
                rows.append(row)
            else:
                rows.extend({**row, "negative": neg} for neg in negatives or [None])
    columns = ["anchor", "positive", "negative"] if triplets else ["anchor", "positive"]
    write_records(Path(path), rows, columns)

"""Scored pairs ``(sentence1, sentence2, score)`` in .jsonl, .csv or .tsv (e.g. STS data).

``sentence1`` becomes a query, ``sentence2`` a document and ``score`` goes to ``ds.scores``;
no relevance judgments are made.
"""

from __future__ import annotations

from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.records import Record, write_records
from core.datasets.textids import TextDatasetBuilder, read_text_dataset
from core.datasets.validate import require_valid

FORMAT = "scored-pairs"


def read_scored_pairs(path: str | Path, *, options: ReadOptions | None = None) -> RetrievalDataset:
    return read_text_dataset(Path(path), split="train", fmt=FORMAT, add=_add, options=options)


def _add(builder: TextDatasetBuilder, record: Record) -> None:
    sentence1 = record.text("sentence1")
    sentence2 = record.text("sentence2")
    score = record.score("score")
    if sentence1 is None or sentence2 is None or score is None:
        return
    builder.score(builder.query(sentence1), builder.doc(sentence2), score)


def write_scored_pairs(ds: RetrievalDataset, path: str | Path) -> None:
    """One row per entry of ``ds.scores``."""
    require_valid(ds)
    rows: list[dict[str, object]] = [
        {"sentence1": ds.queries[qid].text, "sentence2": ds.corpus[did].full_text, "score": score}
        for qid, scored in ds.scores.items()
        for did, score in scored.items()
    ]
    write_records(Path(path), rows, ["sentence1", "sentence2", "score"])

"""FlagEmbedding training lines: ``{"query", "pos": [...], "neg": [...], "prompt"?, "pos_scores"?,
"neg_scores"?}``.

Texts get ids from their content (``textids.text_id``); each line is a query of its own (equal
texts on two lines stay two queries); ``pos`` become judgments (grade 1) of the split, ``neg`` the
query's negatives, ``prompt`` its instruction and the score lists ``ds.scores``.

FlagEmbedding's ``type`` field is read: ``normal`` (retrieval with in-batch negatives, what
EmbedTune trains) is accepted; other types (``symmetric_class``, ``symmetric_clustering``,
``only_1neg``…) are refused, since training them as retrieval would be wrong.
"""

from __future__ import annotations

from pathlib import Path

from core.datasets.model import RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.records import Record, write_jsonl
from core.datasets.textids import TextDatasetBuilder, read_text_dataset
from core.datasets.validate import require_valid
from core.errors import InvalidInput

FORMAT = "flag-jsonl"
TYPES = ("normal",)


def read_flag_jsonl(
    path: str | Path, *, split: str = "train", options: ReadOptions | None = None
) -> RetrievalDataset:
    return read_text_dataset(Path(path), split=split, fmt=FORMAT, add=_add, options=options)


def _check_type(record: Record) -> None:
    kind = record.text("type", required=False)
    if kind is not None and kind not in TYPES:
        record.problem(
            "unsupported_type",
            f"'type' is {kind!r}: EmbedTune trains retrieval with in-batch negatives (type "
            "'normal') only; classification / clustering / STS data trained that way would be "
            "wrong, so remove these rows or convert them to retrieval pairs",
            key="type",
            expected="'normal' or no 'type'",
        )


def _add(builder: TextDatasetBuilder, record: Record) -> None:
    query = record.text("query")
    prompt = record.text("prompt", required=False)
    pos = record.texts("pos")
    neg = record.texts("neg", required=False)
    if record.data.get("pos") == []:
        record.problem("bad_type", "'pos' is empty", key="pos", expected="at least one text")
    pos_scores = record.scores("pos_scores", len(pos))
    neg_scores = record.scores("neg_scores", len(neg))
    _check_type(record)
    if record.failed or query is None:
        return
    qid = builder.new_query(query, instruction=prompt)
    for i, text in enumerate(pos):
        did = builder.doc(text)
        builder.relevant(qid, did)
        if pos_scores:
            builder.score(qid, did, pos_scores[i])
    for i, text in enumerate(neg):
        did = builder.doc(text)
        builder.negative(qid, did)
        if neg_scores:
            builder.score(qid, did, neg_scores[i])


def write_flag_jsonl(ds: RetrievalDataset, path: str | Path, *, split: str = "train") -> None:
    """One line per query of ``split`` with a relevant document; scores only when all are known."""
    require_valid(ds)
    rows: list[dict[str, object]] = []
    for qid, judged in ds.split_qrels(split).items():
        pos = [did for did, grade in judged.items() if grade > 0]
        if not pos:
            continue
        neg = ds.negatives.get(qid, [])
        query = ds.queries[qid]
        row: dict[str, object] = {
            "query": query.text,
            "pos": [ds.corpus[did].full_text for did in pos],
            "neg": [ds.corpus[did].full_text for did in neg],
        }
        if query.instruction:
            row["prompt"] = query.instruction
        scores = ds.scores.get(qid, {})
        if all(did in scores for did in pos + neg):
            row["pos_scores"] = [scores[did] for did in pos]
            row["neg_scores"] = [scores[did] for did in neg]
        rows.append(row)
    if not rows:
        raise InvalidInput(f"split '{split}' has no relevant documents", code="empty_dataset")
    write_jsonl(Path(path), rows)

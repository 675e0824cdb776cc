"""BEIR folders: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (one split each).

A folder with ``corpus.jsonl`` alone is a corpus-only dataset (ingested documents, before
queries are synthesized). Document ``title``, ``text`` and ``metadata`` (an object: the
provenance of ingested chunks) and query ``text`` are read; any other field (a ``metadata``
that is not an object included) is named in the warnings with its count. An optional
``negatives.jsonl`` (``{"query-id": ..., "corpus-ids": [...]}`` per line) keeps mined hard
negatives; other BEIR readers ignore the file.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.datasets.records import missing_file, read_jsonl, read_lines, write_jsonl
from core.datasets.validate import Issues, require_valid
from core.errors import InvalidInput
from core.names import check_name, child_path

FORMAT = "beir"
NEGATIVES = "negatives.jsonl"
QRELS_HEADER = "query-id\tcorpus-id\tscore"
LAYOUT = "a folder with corpus.jsonl, queries.jsonl and qrels/<split>.tsv"


def read_beir(path: str | Path) -> RetrievalDataset:
    root = Path(path)
    qrels_files = sorted((root / "qrels").glob("*.tsv"))
    if not (root / "corpus.jsonl").is_file():
        raise missing_file(root / "corpus.jsonl", LAYOUT)
    corpus_only = not (root / "queries.jsonl").exists() and not (root / "qrels").exists()
    if not corpus_only:  # a corpus alone (ingested documents) is a dataset; half a one is not
        if not (root / "queries.jsonl").is_file():
            raise missing_file(root / "queries.jsonl", LAYOUT)
        if not qrels_files:
            raise missing_file(root / "qrels", LAYOUT)
    issues = Issues()
    corpus = _read_corpus(root / "corpus.jsonl", issues)
    queries = {} if corpus_only else _read_queries(root / "queries.jsonl", issues)
    issues.raise_if_any()  # so that dropped records do not show up again as unknown ids
    qrels = {p.stem: _read_qrels(p, root, corpus, queries, issues) for p in qrels_files}
    negatives = _read_negatives(root / NEGATIVES, corpus, queries, issues)
    issues.raise_if_any()
    ds = RetrievalDataset(
        corpus,
        queries,
        qrels,
        negatives,
        name=root.name,
        source_format=FORMAT,
        warnings=issues.warnings,
    )
    require_valid(ds)
    return ds


def _unused(record_data: dict[str, object], known: tuple[str, ...]) -> list[str]:
    """Fields of a record that are not read; an empty ``metadata`` carries nothing."""
    return [k for k, v in record_data.items() if k not in known and not (k == "metadata" and not v)]


def _metadata(record_data: dict[str, object]) -> tuple[dict[str, object], bool]:
    """A document's ``metadata`` object (provenance of ingested chunks), and whether one that
    is not an object was left unread."""
    value = record_data.get("metadata")
    return (value, False) if isinstance(value, dict) else ({}, bool(value))


def _read_corpus(path: Path, issues: Issues) -> dict[str, Document]:
    corpus: dict[str, Document] = {}
    unused: Counter[str] = Counter()
    for record in read_jsonl(path, path.name, issues):
        metadata, unread = _metadata(record.data)
        unused.update(_unused(record.data, ("_id", "title", "text", "metadata")))
        unused.update(["metadata"] if unread else [])
        doc_id = record.ident("_id")
        title = record.data.get("title") or ""
        text = record.data.get("text")
        if not isinstance(title, str):
            record.problem("bad_type", "'title' is not a string", key="title", expected="a string")
        if text is None:
            record.problem("missing_field", "'text' is missing", key="text", expected="a text")
        elif not isinstance(text, str):
            record.problem("bad_type", "'text' is not a string", key="text", expected="a string")
        elif not f"{title}{text}".strip():
            record.problem(
                "empty_text", "title and text are empty", key="text", expected="a non-empty text"
            )
        if doc_id in corpus:
            record.problem(
                "duplicate_id",
                f"document '{doc_id}' appears twice",
                key="_id",
                expected="unique ids",
            )
        if not record.failed and doc_id is not None:
            corpus[doc_id] = Document(doc_id, str(text), str(title), metadata)
    issues.warn_unused(unused, file=path.name)
    return corpus


def _read_queries(path: Path, issues: Issues) -> dict[str, Query]:
    queries: dict[str, Query] = {}
    unused: Counter[str] = Counter()
    for record in read_jsonl(path, path.name, issues):
        unused.update(_unused(record.data, ("_id", "text")))
        query_id = record.ident("_id")
        text = record.text("text")
        if query_id in queries:
            record.problem(
                "duplicate_id",
                f"query '{query_id}' appears twice",
                key="_id",
                expected="unique ids",
            )
        if not record.failed and query_id is not None and text is not None:
            queries[query_id] = Query(query_id, text)
    issues.warn_unused(unused, file=path.name)
    return queries


def _read_qrels(
    path: Path, root: Path, corpus: dict[str, Document], queries: dict[str, Query], issues: Issues
) -> Qrels:
    name = path.relative_to(root).as_posix()
    qrels: Qrels = {}
    for number, line in read_lines(path, name, issues):
        cells = [cell.strip() for cell in line.rstrip("\r\n").split("\t")]
        if cells[0].lower() in ("query-id", "query_id", "qid"):
            continue  # header
        if len(cells) != 3:
            issues.add(
                "bad_csv",
                f"line has {len(cells)} tab-separated values",
                file=name,
                line=number,
                expected=QRELS_HEADER,
            )
            continue
        qid, did, score = cells
        where = {"file": name, "line": number}
        if qid not in queries:
            issues.add(
                "unknown_query_id",
                f"query '{qid}' is not in queries.jsonl",
                field="query-id",
                expected="an _id from queries.jsonl",
                **where,
            )
        if did not in corpus:
            issues.add(
                "unknown_doc_id",
                f"document '{did}' is not in corpus.jsonl",
                field="corpus-id",
                expected="an _id from corpus.jsonl",
                **where,
            )
        if not (score.isascii() and score.isdigit()):
            issues.add(
                "bad_score",
                f"score '{score}' is not a grade",
                field="score",
                expected="an integer >= 0",
                **where,
            )
        else:
            qrels.setdefault(qid, {})[did] = int(score)
    return qrels


def _read_negatives(
    path: Path, corpus: dict[str, Document], queries: dict[str, Query], issues: Issues
) -> dict[str, list[str]]:
    negatives: dict[str, list[str]] = {}
    if not path.is_file():
        return negatives
    for record in read_jsonl(path, path.name, issues):
        qid = record.ident("query-id")
        doc_ids = record.texts("corpus-ids")
        if qid is not None and qid not in queries:
            record.problem(
                "unknown_query_id",
                f"query '{qid}' is not in queries.jsonl",
                key="query-id",
                expected="an _id from queries.jsonl",
            )
        for did in doc_ids:
            if did not in corpus:
                record.problem(
                    "unknown_doc_id",
                    f"document '{did}' is not in corpus.jsonl",
                    key="corpus-ids",
                    expected="ids from corpus.jsonl",
                )
        if not record.failed and qid is not None:
            negatives[qid] = doc_ids
    return negatives


def write_beir(ds: RetrievalDataset, path: str | Path) -> None:
    """Write the corpus, the queries and every split's judgments."""
    require_valid(ds)
    if not ds.qrels and ds.queries:
        raise InvalidInput(
            "a BEIR folder needs at least one split of judgments", code="empty_dataset"
        )
    root = Path(path)
    docs = [
        {
            "_id": d.id,
            "title": d.title,
            "text": d.text,
            **({"metadata": d.metadata} if d.metadata else {}),
        }
        for d in ds.corpus.values()
    ]
    write_jsonl(root / "corpus.jsonl", docs)
    if not ds.queries:
        return  # a corpus only: corpus.jsonl alone
    write_jsonl(
        root / "queries.jsonl", [{"_id": q.id, "text": q.text} for q in ds.queries.values()]
    )
    (root / "qrels").mkdir(exist_ok=True)
    for split, qrels in ds.qrels.items():
        lines = [QRELS_HEADER] + [
            f"{qid}\t{did}\t{grade}"
            for qid, judged in qrels.items()
            for did, grade in judged.items()
        ]
        target = child_path(
            root / "qrels", f"{check_name(split, param='split')}.tsv", param="split"
        )
        target.write_text("\n".join(lines) + "\n", encoding="utf-8")
    if ds.negatives:
        rows = [{"query-id": q, "corpus-ids": ids} for q, ids in ds.negatives.items() if ids]
        write_jsonl(root / NEGATIVES, rows)

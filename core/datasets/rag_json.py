"""RAG JSON: one object with ``queries``, ``corpus`` and ``relevant_docs`` (llama-index's
``EmbeddingQAFinetuneDataset`` files), plus optional ``negative_docs``, ``reference_answers`` and
``queries_split`` (``{"train": [query ids], "val": [...]}``, as the RAG-dataset converters write):
a file with ``queries_split`` keeps those splits, and a query may be in one split only.
With ``drop_empty``, empty documents and queries are dropped with the judgments pointing at them.

Document titles are not part of the format: the writer stores ``Document.full_text``.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.records import DEEPER, DROP_HINT, missing_file, read_text
from core.datasets.validate import Issues, check_refs, require_valid
from core.errors import InvalidInput
from core.safe_values import MAX_DEPTH, too_deep

FORMAT = "rag-json"
KEYS = ("queries", "corpus", "relevant_docs")
OPTIONAL = ("negative_docs", "reference_answers", "queries_split", "mode")


def load_json(path: Path, issues: Issues) -> dict[str, Any]:
    """The parsed file; bad encoding, bad JSON and duplicate keys are reported, then raised."""
    if not path.is_file():
        raise missing_file(path, "a JSON file")
    text = read_text(path, path.name, issues)
    issues.raise_if_any()

    def unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
        for key, count in Counter(k for k, _ in pairs).items():
            if count > 1:
                issues.add(
                    "duplicate_id",
                    f"key '{key}' appears {count} times in one object",
                    file=path.name,
                    field=key,
                    expected="unique ids",
                )
        return dict(pairs)

    try:
        data = json.loads(text or "", object_pairs_hook=unique_keys)
    except json.JSONDecodeError as e:
        issues.add(
            "bad_json",
            f"invalid JSON: {e.msg} (column {e.colno})",
            file=path.name,
            line=e.lineno,
            expected="one JSON object",
        )
        data = {}
    except RecursionError:  # nested past what the parser takes
        data = DEEPER
    if data is DEEPER or too_deep(data, MAX_DEPTH + 2):  # sections hold objects of records
        issues.add(
            "too_deep",
            f"the file nests deeper than {MAX_DEPTH + 2} levels",
            file=path.name,
            expected="sections of flat records",
        )
        data = {}
    if not isinstance(data, dict):
        issues.add(
            "bad_json",
            "the file is not a JSON object",
            file=path.name,
            expected="an object with " + ", ".join(KEYS),
        )
    issues.raise_if_any()
    return data


def read_rag_json(
    path: str | Path, *, split: str = "train", options: ReadOptions | None = None
) -> RetrievalDataset:
    path = Path(path)
    issues = Issues()
    data = load_json(path, issues)
    dropped: dict[str, list[str]] | None = (
        {"queries": [], "corpus": []} if options and options.drop_empty else None
    )
    section = partial(_section, data, file=path.name, issues=issues, dropped=dropped)
    queries, corpus = section("queries", "texts"), section("corpus", "texts")
    relevant = section("relevant_docs", "ids")
    negative = section("negative_docs", "ids", required=False)
    answers = section("reference_answers", "texts", required=False)
    splits = section("queries_split", "ids", required=False)
    issues.raise_if_any()
    if dropped:
        relevant, negative = _drop(dropped, relevant, negative, file=path.name, issues=issues)
        gone = set(dropped["queries"])
        splits = {name: [q for q in ids if q not in gone] for name, ids in splits.items()}
    known = {"queries": queries, "corpus": corpus, "file": path.name}
    check_refs(issues, relevant, field="relevant_docs", **known)
    check_refs(issues, negative, field="negative_docs", **known)
    check_refs(issues, dict.fromkeys(answers, ()), field="reference_answers", **known)
    check_refs(
        issues, {qid: () for ids in splits.values() for qid in ids}, field="queries_split", **known
    )
    judged = {qid: dict.fromkeys(docs, 1) for qid, docs in relevant.items() if docs}
    qrels = _own_splits(splits, judged, path.name, issues) if splits else {split: judged}
    issues.raise_if_any()
    for key in sorted(set(data) - {*KEYS, *OPTIONAL}):
        issues.warn("unused_column", f"key '{key}' is not read", file=path.name, field=key)
    ds = RetrievalDataset(
        corpus={did: Document(did, text) for did, text in corpus.items()},
        queries={qid: Query(qid, text, answer=answers.get(qid)) for qid, text in queries.items()},
        qrels=qrels,
        negatives={qid: list(dict.fromkeys(docs)) for qid, docs in negative.items() if docs},
        name=path.stem,
        source_format=FORMAT,
        warnings=issues.warnings,
    )
    require_valid(ds)
    return ds


def _drop(
    dropped: dict[str, list[str]],
    *sections: dict[str, list[str]],
    file: str,
    issues: Issues,
) -> list[dict[str, list[str]]]:
    """Remove dropped queries and documents from query id -> doc ids sections; warn with counts."""
    queries, docs = set(dropped["queries"]), set(dropped["corpus"])
    removed = 0
    kept = []
    for refs in sections:
        new = {qid: [d for d in ids if d not in docs] for qid, ids in refs.items()}
        removed += sum(len(ids) for ids in refs.values())
        new = {qid: ids for qid, ids in new.items() if qid not in queries}
        removed -= sum(len(ids) for ids in new.values())
        kept.append(new)
    if queries or docs:
        issues.warn(
            "dropped_empty",
            f"dropped {len(docs)} empty documents, {len(queries)} empty queries and "
            f"{removed} judgments pointing at them",
            file=file,
        )
    return kept


def _own_splits(
    splits: dict[str, list[str]], judged: Qrels, file: str, issues: Issues
) -> dict[str, Qrels]:
    """The judgments of each split of ``queries_split``; a query in two splits is an issue."""
    seen: dict[str, str] = {}
    for name, ids in splits.items():
        for qid in ids:
            if seen.setdefault(qid, name) != name:
                issues.add(
                    "overlapping_splits",
                    f"query '{qid}' is in splits '{seen[qid]}' and '{name}'",
                    file=file,
                    field="queries_split",
                    expected="each query in one split",
                )
    if unsplit := len(judged.keys() - seen.keys()):
        issues.warn(
            "unsplit_queries",
            f"{unsplit} judged queries are in no split of 'queries_split' and are not used",
            file=file,
            field="queries_split",
        )
    return {
        name: {qid: judged[qid] for qid in ids if qid in judged} for name, ids in splits.items()
    }


def write_rag_json(
    ds: RetrievalDataset, path: str | Path, *, split: str | list[str] = "train"
) -> None:
    """Write the whole corpus and the queries of ``split`` that have a relevant document.

    Given several splits, the file gets ``queries_split``; a query judged in two of them
    cannot be written that way and is refused."""
    require_valid(ds)
    splits = [split] if isinstance(split, str) else split
    relevant: dict[str, list[str]] = {}
    own: dict[str, list[str]] = {}
    for name in splits:
        for qid, judged in ds.split_qrels(name).items():
            docs = [did for did, grade in judged.items() if grade > 0]
            if not docs:
                continue
            if qid in relevant:
                raise InvalidInput(
                    f"query '{qid}' is judged in two of the splits {', '.join(splits)}; "
                    "write one split at a time",
                    code="overlapping_splits",
                    param="split",
                )
            relevant[qid] = docs
            own.setdefault(name, []).append(qid)
    if not relevant:
        raise InvalidInput(f"split '{split}' has no relevant documents", code="empty_dataset")
    data: dict[str, object] = {
        "queries": {qid: ds.queries[qid].text for qid in relevant},
        "corpus": {did: doc.full_text for did, doc in ds.corpus.items()},
        "relevant_docs": relevant,
        "mode": "text",
    }
    negatives = {qid: ds.negatives[qid] for qid in relevant if ds.negatives.get(qid)}
    answers = {qid: ds.queries[qid].answer for qid in relevant if ds.queries[qid].answer}
    if negatives:
        data["negative_docs"] = negatives
    if answers:
        data["reference_answers"] = answers
    if len(splits) > 1:
        data["queries_split"] = own
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def _text_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return "bad_type"
    return None if value.strip() else "empty_text"


def _ids_problem(value: object) -> str | None:
    ok = isinstance(value, list) and all(isinstance(i, str) for i in value)
    return None if ok else "bad_type"


KINDS: dict[str, tuple[Callable[[object], str | None], str]] = {
    "texts": (_text_problem, "an object of id -> text"),
    "ids": (_ids_problem, "an object of query id -> [doc id, ...]"),
}


def _section(
    data: dict[str, Any],
    key: str,
    kind: str,
    *,
    file: str,
    issues: Issues,
    required: bool = True,
    dropped: dict[str, list[str]] | None = None,
) -> dict[str, Any]:
    """The entries of the object ``data[key]`` that are well-formed; the others are reported.

    With ``dropped``, empty texts of ``queries`` / ``corpus`` are listed there instead."""
    problem, expected = KINDS[kind]
    value = data.get(key)
    if value is None:
        if required:
            issues.add(
                "missing_field", f"'{key}' is missing", file=file, field=key, expected=expected
            )
        return {}
    if not isinstance(value, dict):
        issues.add(
            "bad_type",
            f"'{key}' is a {type(value).__name__}",
            file=file,
            field=key,
            expected=expected,
        )
        return {}
    good = {}
    for item_id, item in value.items():
        code = problem(item)
        if code == "empty_text" and dropped is not None and key in dropped:
            dropped[key].append(item_id)
        elif code:
            hint = (
                f" ({DROP_HINT})" if code == "empty_text" and key in ("queries", "corpus") else ""
            )
            issues.add(
                code,
                f"entry '{item_id}' is {'empty' if code == 'empty_text' else 'mistyped'}{hint}",
                file=file,
                field=f"{key}.{item_id}",
                expected=expected,
            )
        else:
            good[item_id] = item
    return good

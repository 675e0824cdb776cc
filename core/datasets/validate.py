"""Collect data issues while reading, and check an in-memory dataset for semantic problems."""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

from core.datasets.model import RetrievalDataset
from core.errors import DataIssue, DatasetInvalid

MAX_ISSUES = 50


class Issues:
    """Up to ``MAX_ISSUES`` problems found in a dataset, raised together as ``DatasetInvalid``,
    and up to as many warnings: things read in a way the user should know about."""

    def __init__(self) -> None:
        self.items: list[DataIssue] = []
        self.warnings: list[DataIssue] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(
        self,
        code: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        expected: str | None = None,
    ) -> None:
        if len(self.items) < MAX_ISSUES:
            self.items.append(DataIssue(code, message, file, line, field, expected))

    def warn(
        self,
        code: str,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        if len(self.warnings) < MAX_ISSUES:
            self.warnings.append(DataIssue(code, message, file, line, field))

    def warn_unused(self, counts: Mapping[str, int], *, file: str) -> None:
        """One ``unused_column`` warning per column no reader looked at, with its count."""
        for key, count in sorted(counts.items()):
            self.warn(
                "unused_column",
                f"column '{key}' ({count} records) is not read as any field; map it with "
                "--columns FIELD=COLUMN or remove it",
                file=file,
                field=key,
            )

    def raise_if_any(self) -> None:
        if self.items:
            raise DatasetInvalid(issues=list(self.items))


def check_refs(
    issues: Issues,
    refs: Mapping[str, Iterable[str]],
    *,
    queries: Collection[str],
    corpus: Collection[str],
    field: str,
    file: str | None = None,
) -> None:
    """Report query ids and document ids in ``refs`` (query id -> doc ids) that do not exist."""
    for qid, doc_ids in refs.items():
        if qid not in queries:
            issues.add(
                "unknown_query_id",
                f"query '{qid}' is not in the queries",
                file=file,
                field=field,
                expected="an id from the queries",
            )
        for did in doc_ids:
            if did not in corpus:
                issues.add(
                    "unknown_doc_id",
                    f"query '{qid}' refers to unknown document '{did}'",
                    file=file,
                    field=field,
                    expected="an id from the corpus",
                )


def validate(ds: RetrievalDataset) -> list[DataIssue]:
    """Semantic problems of an in-memory dataset: empty parts or texts, dangling ids, bad grades."""
    issues = Issues()
    if not ds.corpus or (ds.qrels and not ds.queries):
        issues.add(
            "empty_dataset",
            "the dataset needs at least one document, and queries for its judgments",
        )
    for doc in ds.corpus.values():
        if not doc.full_text.strip():
            issues.add("empty_text", f"document '{doc.id}' has no text", field="corpus")
    for query in ds.queries.values():
        if not query.text.strip():
            issues.add("empty_text", f"query '{query.id}' has no text", field="queries")
    known = {"queries": ds.queries, "corpus": ds.corpus}
    for split, qrels in ds.qrels.items():
        check_refs(issues, qrels, field=f"qrels.{split}", **known)
        for qid, judged in qrels.items():
            for did, grade in judged.items():
                if isinstance(grade, bool) or not isinstance(grade, int) or grade < 0:
                    issues.add(
                        "bad_score",
                        f"grade {grade!r} for ('{qid}', '{did}')",
                        field=f"qrels.{split}",
                        expected="an integer >= 0",
                    )
    check_refs(issues, ds.negatives, field="negatives", **known)
    check_refs(issues, ds.scores, field="scores", **known)
    for qid, scored in ds.scores.items():
        for did, score in scored.items():
            if not math.isfinite(score):
                issues.add(
                    "bad_score",
                    f"score {score!r} for ('{qid}', '{did}')",
                    field="scores",
                    expected="a finite number",
                )
    return issues.items


def require_valid(ds: RetrievalDataset) -> None:
    """Raise ``DatasetInvalid`` listing the problems ``validate`` finds, if any."""
    issues = validate(ds)
    if issues:
        raise DatasetInvalid(issues=issues)

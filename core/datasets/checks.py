"""Data checks before training: leaks, contradictions and holes in a dataset's judgments.

Five checks, each counted in a dataset's stats (``stats.checks``) with up to ``MAX_LISTED``
examples, and the fatal ones refused before a fine-tune trains (``require_trainable``):

- ``test_query_in_train`` (fatal): a query of a held-out split (``test``, ...) whose text
  equals a train query's with another id, exactly or once normalized (``normalize_text``).
  The same id in both splits is ``test_query_id_in_train``, not fatal: fine-tunes hold such
  queries out of training already (``core.datasets.split.hold_out``).
- ``near_duplicate_documents``: two documents under different ids whose normalized texts
  are equal or whose word 3-gram shingle sets have a Jaccard similarity of at least
  ``NEAR_DUPLICATE_JACCARD`` (MinHash with LSH banding finds candidates, the exact Jaccard
  of each candidate pair decides).
- ``positive_is_negative`` (fatal for the train split's queries): a document listed as a
  query's negative and judged relevant to it in some split.
- ``positive_empty_document``: a relevant document with no letter or digit in its text.
- ``query_without_positives`` (fatal in the train split): a judged query with no relevant
  document in the corpus.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from core.datasets.model import RetrievalDataset
from core.errors import DataCheckFailed, DataIssue

MAX_LISTED = 50  # examples kept per check; the count is exact
NEAR_DUPLICATE_JACCARD = 0.8  # word 3-gram shingle sets
NEAR_DUPLICATE_MAX_DOCS = 200_000  # larger corpora: exact (normalized) duplicates only
SHINGLE_WORDS = 3
PERMUTATIONS, BANDS = 64, 16  # 4 rows per band: a pair at Jaccard 0.8 is a candidate 99.98%
_PRIME = 4_294_967_311  # the first prime above 2**32
_BIG_BUCKET = 100  # an LSH bucket larger than this links its members to its first only
_WORD = re.compile(r"[^\W_]+")
FATAL = ("test_query_in_train", "positive_is_negative", "query_without_positives")


def normalize_text(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols dropped, whitespace collapsed."""
    return " ".join(_WORD.findall(unicodedata.normalize("NFKC", text).casefold()))


@dataclass
class CheckResult:
    """The records that fail a check; stats keep their count and the first ``MAX_LISTED``."""

    records: list[dict[str, Any]] = field(default_factory=list)
    skipped: str | None = None  # why the check did not run

    @property
    def count(self) -> int:
        return len(self.records)

    @property
    def items(self) -> list[dict[str, Any]]:
        return self.records[:MAX_LISTED]

    def add(self, item: dict[str, Any]) -> None:
        self.records.append(item)

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "items": self.items, "skipped": self.skipped}


def dataset_checks(ds: RetrievalDataset, *, train_split: str = "train") -> dict[str, Any]:
    """Every check on ``ds``, as stored in ``stats.checks``: held-out splits are all splits
    but ``train_split``; ``query_without_positives`` covers every split."""
    held_out = [s for s in ds.splits if s != train_split] if train_split in ds.qrels else []
    leaks, same_ids = held_out_overlap(ds, train_split, held_out)
    results = {
        "test_query_in_train": leaks,
        "test_query_id_in_train": same_ids,
        "near_duplicate_documents": near_duplicate_documents(ds),
        "positive_is_negative": positive_is_negative(ds, ds.qrels.get(train_split, {})),
        "positive_empty_document": positive_empty_documents(ds),
        "query_without_positives": queries_without_positives(ds, ds.splits),
    }
    return {"train_split": train_split, **{k: v.as_dict() for k, v in results.items()}}


def fatal_checks(
    ds: RetrievalDataset, *, train_split: str, held_out: Iterable[str]
) -> dict[str, CheckResult]:
    """The fatal checks for training ``train_split`` and evaluating on ``held_out``."""
    held = [s for s in held_out if s in ds.qrels and s != train_split]
    contradictions = positive_is_negative(ds, ds.split_qrels(train_split))
    return {
        "test_query_in_train": held_out_overlap(ds, train_split, held)[0],
        "positive_is_negative": CheckResult([r for r in contradictions.records if r["train"]]),
        "query_without_positives": queries_without_positives(ds, [train_split]),
    }


def require_trainable(ds: RetrievalDataset, *, train_split: str, held_out: Iterable[str]) -> None:
    """Raise ``DataCheckFailed`` when training ``train_split`` would leak held-out queries,
    train against contradicting labels, or hold queries without positives."""
    found = fatal_checks(ds, train_split=train_split, held_out=held_out)
    issues = [_issue(name, result) for name, result in found.items() if result.count]
    if issues:
        raise DataCheckFailed(issues=issues)


def drop_fatal(
    ds: RetrievalDataset, *, train_split: str, held_out: Iterable[str]
) -> tuple[RetrievalDataset, dict[str, int]]:
    """``ds`` without what the fatal checks find, and how many records each check dropped:
    the train judgments of train queries that leak into a held-out split and of queries
    without positives, and the negatives that are positives of their query."""
    found = fatal_checks(ds, train_split=train_split, held_out=held_out)
    unjudged = {r["train_query_id"] for r in found["test_query_in_train"].records} | {
        r["query_id"] for r in found["query_without_positives"].records
    }
    wrong = {(r["query_id"], r["doc_id"]) for r in found["positive_is_negative"].records}
    train = {q: j for q, j in ds.qrels[train_split].items() if q not in unjudged}
    negatives = {
        q: kept
        for q, docs in ds.negatives.items()
        if (kept := [d for d in docs if (q, d) not in wrong])
    }
    dropped = {name: result.count for name, result in found.items() if result.count}
    return replace(ds, qrels={**ds.qrels, train_split: train}, negatives=negatives), dropped


def fatal_in_stats(checks: dict[str, Any], *, train_split: str, held_out: Iterable[str]) -> None:
    """``require_trainable`` from a dataset's stored ``stats.checks`` (the listed examples),
    when they were computed for ``train_split``: a refusal at submission, before any load."""
    if checks.get("train_split") != train_split:
        return
    held = set(held_out)
    relevant = {
        "test_query_in_train": lambda item: item["split"] in held,
        "positive_is_negative": lambda item: item.get("train", False),
        "query_without_positives": lambda item: item["split"] == train_split,
    }
    issues = []
    for name, keep in relevant.items():
        items = [item for item in checks.get(name, {}).get("items", []) if keep(item)]
        if items:
            issues.append(_issue(name, CheckResult(items)))
    if issues:
        raise DataCheckFailed(issues=issues)


def _issue(name: str, result: CheckResult) -> DataIssue:
    ids = tuple(dict.fromkeys(i for item in result.items for i in _ids_of(item)))
    listed = "" if result.count <= len(result.items) else f" (first {len(result.items)} listed)"
    return DataIssue(
        name,
        f"{result.count} record(s) fail '{name}'{listed}: {', '.join(ids[:10])}",
        field="dataset_id",
        ids=ids,
    )


def _ids_of(item: dict[str, Any]) -> list[str]:
    keys = ("query_id", "train_query_id", "doc_id")
    return [item[k] for k in keys if k in item]


# the checks ----------------------------------------------------------------------------------


def held_out_overlap(
    ds: RetrievalDataset, train_split: str, held_out: Iterable[str]
) -> tuple[CheckResult, CheckResult]:
    """Held-out queries whose text a train query has under another id (exact, else
    normalized), and held-out query ids that the train split also judges."""
    leaks, same_ids = CheckResult(), CheckResult()
    train = [q for q in ds.qrels.get(train_split, {}) if q in ds.queries]
    exact: dict[str, str] = {}
    normalized: dict[str, str] = {}
    for qid in train:
        text = ds.queries[qid].text
        exact.setdefault(text, qid)
        normalized.setdefault(normalize_text(text), qid)
    for split in held_out:
        for qid in ds.qrels.get(split, {}):
            if qid not in ds.queries:
                continue
            if qid in ds.qrels[train_split]:
                same_ids.add({"split": split, "query_id": qid})
                continue
            text = ds.queries[qid].text
            match, other = "exact", exact.get(text)
            if other is None:
                match, other = "normalized", normalized.get(normalize_text(text))
            if other is not None:
                leaks.add(
                    {"split": split, "query_id": qid, "train_query_id": other, "match": match}
                )
    return leaks, same_ids


def positive_is_negative(ds: RetrievalDataset, train_queries: Iterable[str]) -> CheckResult:
    """(query, document) pairs listed as a negative and judged relevant in some split;
    ``train`` marks the queries of ``train_queries``."""
    train = set(train_queries)
    positives: dict[str, set[str]] = {}
    for qrels in ds.qrels.values():
        for qid, judged in qrels.items():
            positives.setdefault(qid, set()).update(d for d, g in judged.items() if g > 0)
    result = CheckResult()
    for qid, negatives in ds.negatives.items():
        for did in dict.fromkeys(negatives):
            if did in positives.get(qid, ()):
                result.add({"query_id": qid, "doc_id": did, "train": qid in train})
    return result


def positive_empty_documents(ds: RetrievalDataset) -> CheckResult:
    """Relevant (query, document) judgments whose document has no letter or digit."""
    empty = {d for d, doc in ds.corpus.items() if not normalize_text(doc.full_text)}
    result = CheckResult()
    for split, qrels in sorted(ds.qrels.items()):
        for qid, judged in qrels.items():
            for did, grade in judged.items():
                if grade > 0 and did in empty:
                    result.add({"split": split, "query_id": qid, "doc_id": did})
    return result


def queries_without_positives(ds: RetrievalDataset, splits: Iterable[str]) -> CheckResult:
    """Judged queries of ``splits`` with no relevant document in the corpus."""
    result = CheckResult()
    for split in splits:
        for qid, judged in ds.qrels.get(split, {}).items():
            if not any(grade > 0 and did in ds.corpus for did, grade in judged.items()):
                result.add({"split": split, "query_id": qid})
    return result


def near_duplicate_documents(
    ds: RetrievalDataset, threshold: float = NEAR_DUPLICATE_JACCARD
) -> CheckResult:
    """Pairs of documents with equal normalized texts (similarity 1.0) or shingle Jaccard at
    least ``threshold``; each member of an equal-text group pairs with the group's first."""
    result = CheckResult()
    first_with: dict[str, str] = {}
    for did, doc in ds.corpus.items():
        text = normalize_text(doc.full_text)
        if not text:
            continue
        if text in first_with:
            result.add({"doc_ids": [first_with[text], did], "similarity": 1.0})
        else:
            first_with[text] = did
    if len(first_with) > NEAR_DUPLICATE_MAX_DOCS:
        result.skipped = f"shingles not compared above {NEAR_DUPLICATE_MAX_DOCS} documents"
        return result
    ids = list(first_with.values())
    if len(ids) < 2:
        return result
    shingles = _Shingles(list(first_with))
    for a, b in sorted(shingles.candidates()):
        similarity = shingles.jaccard(a, b)
        if similarity >= threshold:
            result.add({"doc_ids": [ids[a], ids[b]], "similarity": round(similarity, 4)})
    return result


class _Shingles:
    """The word 3-gram hashes (32 bits) of many normalized texts, in one flat array."""

    def __init__(self, texts: list[str]) -> None:
        vocab: dict[str, int] = {}
        codes: list[int] = []
        starts, counts = [], []
        for text in texts:
            words = text.split()
            starts.append(len(codes))
            counts.append(max(1, len(words) - SHINGLE_WORDS + 1))
            codes.extend(vocab.setdefault(w, len(vocab)) for w in words)
            codes.extend([-1] * (SHINGLE_WORDS - 1))  # pads a text shorter than 3 words
        c = np.asarray(codes, dtype=np.int64).astype(np.uint64)
        positions = np.concatenate(
            [np.arange(s, s + n) for s, n in zip(starts, counts, strict=True)]
        )
        h = c[positions] * np.uint64(0x9E3779B97F4A7C15)
        for k in range(1, SHINGLE_WORDS):
            h = (h ^ c[positions + k]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
        self.hashes = h >> np.uint64(32)
        self.bounds = np.concatenate([[0], np.cumsum(counts)])
        self._sets: dict[int, np.ndarray] = {}

    def candidates(self) -> set[tuple[int, int]]:
        """Index pairs that share an LSH band of their MinHash signatures."""
        rng = np.random.default_rng(0)
        a = rng.integers(1, 1 << 31, PERMUTATIONS, dtype=np.uint64)
        b = rng.integers(0, 1 << 31, PERMUTATIONS, dtype=np.uint64)
        starts = self.bounds[:-1]
        signatures = np.stack(
            [
                np.minimum.reduceat((a[k] * self.hashes + b[k]) % np.uint64(_PRIME), starts)
                for k in range(PERMUTATIONS)
            ],
            axis=1,
        )
        pairs: set[tuple[int, int]] = set()
        rows = PERMUTATIONS // BANDS
        for band in range(BANDS):
            buckets: dict[bytes, list[int]] = {}
            for i, key in enumerate(signatures[:, band * rows : (band + 1) * rows]):
                buckets.setdefault(key.tobytes(), []).append(i)
            for members in buckets.values():
                if len(members) > _BIG_BUCKET:
                    pairs.update((members[0], m) for m in members[1:])
                else:
                    pairs.update((x, y) for i, x in enumerate(members) for y in members[i + 1 :])
        return pairs

    def jaccard(self, x: int, y: int) -> float:
        """The exact Jaccard similarity of two texts' shingle sets."""
        one, two = self._set(x), self._set(y)
        shared = len(np.intersect1d(one, two, assume_unique=True))
        return shared / (len(one) + len(two) - shared)

    def _set(self, i: int) -> np.ndarray:
        if i not in self._sets:
            self._sets[i] = np.unique(self.hashes[self.bounds[i] : self.bounds[i + 1]])
        return self._sets[i]

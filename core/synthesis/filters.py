"""Filters of synthesized queries, applied in order; each counts what it removed.

empty → too_short → too_long → duplicate → copies_chunk → wrong_language → round_trip.
Lengths count words, and each CJK character as one word. ``copies_chunk`` measures the share
of the query's word 3-grams (character 3-grams for CJK) found in its chunk; extractive
generators (inverse cloze, crop) copy by design and are exempt. ``wrong_language`` compares
the writing system (CJK or not) of the query with its chunk's.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.datasets.model import Document
from core.synthesis.generators import EXTRACTIVE, Candidate

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]")
_WORD = re.compile(r"\w+", re.UNICODE)
FILTERS = (
    "empty",
    "too_short",
    "too_long",
    "duplicate",
    "copies_chunk",
    "wrong_language",
    "round_trip",
)
Ranker = Callable[[list[str]], list[list[str]]]
"""Query texts -> the ids of each query's top-k chunks (the base model's retrieval)."""


@dataclass(frozen=True)
class FilterSpec:
    min_words: int = 3
    max_words: int = 64
    max_copy_overlap: float = 0.8  # share of the query's 3-grams found in the chunk
    check_language: bool = True
    round_trip_k: int = 0  # keep a query whose chunk ranks in the base model's top k; 0: off


def cjk_share(text: str) -> float:
    letters = [c for c in text if c.isalpha()]
    return sum(bool(_CJK.match(c)) for c in letters) / len(letters) if letters else 0.0


def word_count(text: str) -> int:
    return len(_CJK.sub(" ", text).split()) + len(_CJK.findall(text))


def _grams(text: str) -> set[tuple[str, ...]]:
    cjk = cjk_share(text) > 0.3
    units = [c for c in text if c.isalnum()] if cjk else _WORD.findall(text.casefold())
    return {tuple(units[i : i + 3]) for i in range(max(len(units) - 2, 0))}


def copy_overlap(query: str, chunk: str) -> float:
    """The share of the query's 3-grams that occur in the chunk (0 for queries under 3 units)."""
    wanted = _grams(query)
    return len(wanted & _grams(chunk)) / len(wanted) if wanted else 0.0


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def _verdict(c: Candidate, corpus: dict[str, Document], spec: FilterSpec, seen: set[str]) -> str:
    """The first filter that removes ``c``, or ``""`` (round trip comes later, in bulk)."""
    text = c.text.strip()
    if not text:
        return "empty"
    words = word_count(text)
    if words < spec.min_words:
        return "too_short"
    if words > spec.max_words:
        return "too_long"
    if _normal(text) in seen:
        return "duplicate"
    chunk = corpus[c.chunk_ids[0]].text
    if c.generator not in EXTRACTIVE and copy_overlap(text, chunk) > spec.max_copy_overlap:
        return "copies_chunk"
    if spec.check_language and (cjk_share(text) > 0.3) != (cjk_share(chunk) > 0.3):
        return "wrong_language"
    return ""


def apply_filters(
    candidates: Sequence[Candidate],
    corpus: dict[str, Document],
    spec: FilterSpec,
    ranker: Ranker | None = None,
) -> tuple[list[Candidate], dict[str, int]]:
    """The candidates every filter keeps, and per filter how many it removed."""
    removed = dict.fromkeys(FILTERS, 0)
    seen: set[str] = set()
    kept: list[Candidate] = []
    for c in candidates:
        verdict = _verdict(c, corpus, spec, seen)
        if verdict:
            removed[verdict] += 1
            continue
        seen.add(_normal(c.text))
        kept.append(Candidate(c.text.strip(), c.chunk_ids, c.generator))
    if spec.round_trip_k > 0 and ranker is not None and kept:
        top = ranker([c.text for c in kept])
        passed = [c for c, hits in zip(kept, top, strict=True) if set(c.chunk_ids) & set(hits)]
        removed["round_trip"] = len(kept) - len(passed)
        kept = passed
    return kept, removed

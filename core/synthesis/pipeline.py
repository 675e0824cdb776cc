"""Synthesize a labeled dataset from a corpus: generate candidate queries, filter, split."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.errors import InvalidInput
from core.synthesis.filters import FILTERS, Ranker, apply_filters
from core.synthesis.generators import OFFLINE, Candidate, offline_candidates
from core.synthesis.spec import SynthesisSpec
from core.synthesis.splits import build_dataset

LlmGenerate = Callable[[list[Document]], list[Candidate]]
"""Chunks -> the LLM's candidate queries for them (core.synthesis.llm.LlmGenerator)."""


@dataclass
class SynthesisReport:
    chunks: int = 0
    chunks_used: int = 0
    candidates: dict[str, int] = field(default_factory=dict)  # per generator
    removed: dict[str, int] = field(default_factory=dict)  # per filter, in order
    kept_after: dict[str, int] = field(default_factory=dict)  # candidates left after each
    splits: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # the whole step, base-model encode included (set by its service)
    llm: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def chunks_to_use(corpus: dict[str, Document], spec: SynthesisSpec) -> list[Document]:
    """The chunks queries are made for: all, or a seeded sample of ``max_chunks``."""
    docs = list(corpus.values())
    if spec.max_chunks is None or spec.max_chunks >= len(docs):
        return docs
    return random.Random(spec.seed).sample(docs, spec.max_chunks)


def synthesize(
    corpus_ds: RetrievalDataset,
    spec: SynthesisSpec,
    *,
    ranker: Ranker | None = None,
    llm: LlmGenerate | None = None,
    user_test: tuple[dict[str, Query], Qrels] | None = None,
    name: str | None = None,
) -> tuple[RetrievalDataset, SynthesisReport]:
    """A dataset of ``corpus_ds``'s corpus with synthesized train / val / test queries.

    ``ranker`` is the base model's retrieval for the round-trip filter (needed when
    ``spec.round_trip_k`` > 0); ``llm`` is needed when ``"llm"`` is a generator."""
    corpus = corpus_ds.corpus
    if not corpus:
        raise InvalidInput(
            "the dataset has no documents to synthesize queries for",
            code="empty_dataset",
            param="dataset_id",
        )
    if "llm" in spec.generators and llm is None:
        raise InvalidInput(
            "no LLM endpoint is configured (EMBEDTUNE_LLM_BASE_URL)",
            code="llm_not_configured",
            param="generators",
        )
    report = SynthesisReport(chunks=len(corpus))
    chosen = chunks_to_use(corpus, spec)
    report.chunks_used = len(chosen)
    candidates: list[Candidate] = []
    for generator in spec.generators:
        if generator in OFFLINE:
            made = offline_candidates(corpus, chosen, generator, spec.seed)
        else:
            made = llm(chosen) if llm is not None else []
        report.candidates[generator] = len(made)
        candidates.extend(made)
    kept, removed = apply_filters(candidates, corpus, spec.filters, ranker)
    report.removed = removed
    left = len(candidates)
    for name_ in FILTERS:
        left -= removed[name_]
        report.kept_after[name_] = left
    ds, counts = build_dataset(
        corpus, kept, spec.split, name=name or f"{corpus_ds.name[:50]}-synth", user_test=user_test
    )
    report.splits = {k: v for k, v in sorted(Counter(counts).items())}
    if not ds.qrels.get("train"):
        raise InvalidInput(
            f"no synthesized query for the train split (candidates per generator: "
            f"{report.candidates}; removed by the filters: {removed}); documents without "
            "titles need inverse_cloze, crop or llm",
            code="no_queries",
            param="generators",
        )
    return ds, report

"""Mine hard negatives for one split: encode (cached), index the corpus, search, select.

Memory beyond the dataset: the embeddings (corpus, held by the index once built, and
queries), the negatives kept, and the candidates of one query batch, O(batch_size *
range_max); never a (queries x documents) matrix. 100k queries over 1M documents at 384
dimensions need about 1.5 GB for the index (twice that while it is built), 150 MB for the
queries and a few MB per batch of 1,024 queries at range_max 100 (``kind="auto"`` indexes
with IVF above 200k documents).
"""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from core.datasets.model import RetrievalDataset
from core.errors import Cancelled, InvalidInput
from core.evaluation.evaluator import StageProgress, encode_cached
from core.indexing.faiss_index import VectorIndex
from core.mining.report import MiningReport, MiningTally, ReviewItem
from core.mining.select import select_negatives
from core.mining.spec import MiningSpec
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder

CancelCheck = Callable[[], bool]
DEFAULT_SPEC = MiningSpec()


@dataclass(frozen=True)
class Targets:
    """The queries to mine, with their positives in the mined split and in every split."""

    positives: dict[str, list[str]]  # mined split, documents in the corpus
    excluded: dict[str, set[str]]  # positives of any split
    duplicates: dict[str, set[str]]  # documents whose text equals a positive's or the query's


def mine_negatives(
    dataset: RetrievalDataset,
    embedder: Embedder,
    spec: MiningSpec = DEFAULT_SPEC,
    *,
    cache: EmbeddingCache | None = None,
    progress: StageProgress | None = None,
    should_cancel: CancelCheck | None = None,
) -> tuple[RetrievalDataset, MiningReport]:
    """``dataset`` with negatives for the judged queries of ``spec.split``, and a report.

    Other queries keep their negatives; a mined query's previous negatives are replaced.
    ``progress(stage, done, total)`` sees encode_corpus, encode_queries, index and mine;
    ``should_cancel`` is polled after each chunk the embedder encodes, between stages
    and between query batches; when it returns true, ``Cancelled`` is raised.
    """
    start = time.perf_counter()
    timings: dict[str, float] = {}
    stage = _stage(progress, should_cancel)
    doc_ids = list(dataset.corpus)
    doc_texts = [dataset.corpus[d].full_text for d in doc_ids]
    targets = _targets(dataset, spec.split, doc_ids, doc_texts)
    qids = list(targets.positives)
    query_texts = [dataset.queries[q].text for q in qids]
    doc_vecs, query_vecs, hits = _encode(
        embedder, doc_texts, query_texts, cache, stage, should_cancel, timings
    )
    row = {d: i for i, d in enumerate(doc_ids)}
    positive_scores = {
        q: (doc_vecs[[row[d] for d in targets.positives[q]]] @ query_vecs[i]).tolist()
        for i, q in enumerate(qids)
    }
    with _timed(timings, "index"):
        index = VectorIndex.build(doc_vecs, doc_ids, spec.index, progress=stage("index"))
    del doc_vecs  # the index holds its own copy
    with _timed(timings, "mine"):
        mined, tally = _mine(
            index, query_vecs, qids, targets, positive_scores, spec, stage("mine"), should_cancel
        )
    timings["total"] = time.perf_counter() - start
    report = MiningReport(
        model=embedder.model.ref,
        model_fingerprint=embedder.fingerprint,
        dataset=dataset.name,
        split=spec.split,
        num_documents=len(doc_ids),
        **tally.summary(),
        timings=timings,
        spec=dataclasses.asdict(spec),
        cache={"corpus_hits": hits, "corpus_misses": len(set(doc_texts)) - hits},
        review=_with_texts(tally, dataset),
    )
    negatives = {q: n for q, n in {**dataset.negatives, **mined}.items() if n}
    return dataclasses.replace(dataset, negatives=negatives), report


def _with_texts(tally: MiningTally, dataset: RetrievalDataset) -> list[ReviewItem]:
    """The tally's review list with the query, positive and negative texts."""
    items = tally.review()
    queries = {i.query_id: dataset.queries[i.query_id].text for i in items}
    docs = {d: dataset.corpus[d].full_text for i in items for d in (i.positive_id, i.negative_id)}
    return [item.with_texts(queries, docs) for item in items]


def query_rng(seed: int, qid: str) -> np.random.Generator:
    """The sampling generator of one query: depends on the seed and query id only."""
    return np.random.default_rng((seed, zlib.crc32(qid.encode("utf-8"))))


def _encode(
    embedder: Embedder,
    doc_texts: list[str],
    query_texts: list[str],
    cache: EmbeddingCache | None,
    stage: Callable[[str], Callable[[int, int], None] | None],
    should_cancel: CancelCheck | None,
    timings: dict[str, float],
) -> tuple[np.ndarray, np.ndarray, int]:
    """Corpus and query embeddings, and how many corpus texts the cache served."""
    with _timed(timings, "encode_corpus"):
        doc_vecs, hits = encode_cached(
            embedder, doc_texts, "document", cache, stage("encode_corpus")
        )
    _check(should_cancel)
    with _timed(timings, "encode_queries"):
        query_vecs, _ = encode_cached(
            embedder, query_texts, "query", cache, stage("encode_queries")
        )
    _check(should_cancel)
    return doc_vecs, query_vecs, hits


def _mine(
    index: VectorIndex,
    query_vecs: np.ndarray,
    qids: list[str],
    targets: Targets,
    positive_scores: dict[str, list[float]],
    spec: MiningSpec,
    progress: Callable[[int, int], None] | None,
    should_cancel: CancelCheck | None,
) -> tuple[dict[str, list[str]], MiningTally]:
    """Search the queries batch by batch and select each one's negatives."""
    tally = MiningTally(len(qids), spec.num_negatives, spec.range_max)
    mined: dict[str, list[str]] = {}
    for lo in range(0, len(qids), spec.batch_size):
        _check(should_cancel)
        batch = qids[lo : lo + spec.batch_size]
        ids, scores = index.search(query_vecs[lo : lo + len(batch)], spec.range_max, len(batch))
        for qid, row_ids, row_scores in zip(batch, ids, scores, strict=True):
            selection = select_negatives(
                row_ids,
                row_scores,
                positives=targets.excluded[qid],
                duplicates=targets.duplicates.get(qid, set()),
                positive_scores=positive_scores[qid],
                spec=spec,
                rng=query_rng(spec.seed, qid) if spec.sampling == "random" else None,
            )
            tally.add(
                selection,
                row_scores,
                positive_scores[qid],
                query_id=qid,
                positive_ids=targets.positives[qid],
            )
            mined[qid] = selection.ids
        if progress:
            progress(lo + len(batch), len(qids))
    return mined, tally


def _targets(
    dataset: RetrievalDataset, split: str, doc_ids: list[str], doc_texts: list[str]
) -> Targets:
    """The split's queries with a positive in the corpus, and what each must not get."""
    positives = {
        qid: [d for d, grade in judged.items() if grade > 0 and d in dataset.corpus]
        for qid, judged in dataset.split_qrels(split).items()
        if qid in dataset.queries
    }
    positives = {qid: docs for qid, docs in positives.items() if docs}
    if not positives:
        raise InvalidInput(
            f"split '{split}' has no query with a relevant document in the corpus",
            code="no_judged_queries",
            param="split",
        )
    excluded = {qid: set(docs) for qid, docs in positives.items()}
    for qrels in dataset.qrels.values():
        for qid, judged in qrels.items():
            if qid in excluded:
                excluded[qid].update(d for d, grade in judged.items() if grade > 0)
    duplicates = _duplicates(dataset, positives, excluded, doc_ids, doc_texts)
    return Targets(positives, excluded, duplicates)


def _duplicates(
    dataset: RetrievalDataset,
    positives: dict[str, list[str]],
    excluded: dict[str, set[str]],
    doc_ids: list[str],
    doc_texts: list[str],
) -> dict[str, set[str]]:
    """Per query, the documents (not themselves positives) with a positive's or its text."""
    text_of = dict(zip(doc_ids, doc_texts, strict=True))
    wanted = {qid: {text_of[d] for d in docs if d in text_of} for qid, docs in excluded.items()}
    for qid in positives:
        wanted[qid].add(dataset.queries[qid].text)
    docs_with: dict[str, list[str]] = {t: [] for texts in wanted.values() for t in texts}
    for did, text in zip(doc_ids, doc_texts, strict=True):
        if text in docs_with:
            docs_with[text].append(did)
    out = {}
    for qid, texts in wanted.items():
        same = {d for t in texts for d in docs_with[t]} - excluded[qid]
        if same:
            out[qid] = same
    return out


@contextmanager
def _timed(timings: dict[str, float], name: str) -> Iterator[None]:
    t0 = time.perf_counter()
    yield
    timings[name] = time.perf_counter() - t0


def _check(should_cancel: CancelCheck | None) -> None:
    if should_cancel is not None and should_cancel():
        raise Cancelled("mining was cancelled")


def _stage(
    progress: StageProgress | None, should_cancel: CancelCheck | None
) -> Callable[[str], Callable[[int, int], None] | None]:
    """Per-stage callbacks that report progress and poll ``should_cancel``."""

    def for_stage(name: str) -> Callable[[int, int], None] | None:
        if progress is None and should_cancel is None:
            return None

        def report(done: int, total: int) -> None:
            _check(should_cancel)
            if progress is not None:
                progress(name, done, total)

        return report

    return for_stage

"""Hard-negative mining: exclusions, window, sampling, margins, batching, report and CLI."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from cli.mine import mine as mine_command
from core.datasets.io import load_dataset
from core.datasets.model import Document, Query, RetrievalDataset
from core.errors import Cancelled, InvalidInput
from core.evaluation.evaluator import encode_cached
from core.indexing.faiss_index import IndexSpec
from core.mining import MiningReport, MiningSpec, margin_ceiling, mine_negatives, select_negatives
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, load_embedder

# The tiny random model scores every pair near 0.95, so its specs leave the margin off.
SPEC = MiningSpec(
    range_min=5, range_max=40, num_negatives=4, relative_margin=None, index=IndexSpec("flat")
)
Mined = tuple[RetrievalDataset, MiningReport]
Mine = Callable[..., Mined]
TIE = 1e-5  # faiss and numpy may round a score differently in the last bits


@pytest.fixture(scope="module")
def sample(sample_dir: Path) -> RetrievalDataset:
    return load_dataset(sample_dir)


@pytest.fixture(scope="module")
def embedder(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir))


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> EmbeddingCache:
    """Shared by every mining run here, so the sample corpus is encoded once."""
    return EmbeddingCache(tmp_path_factory.mktemp("mining-cache"))


@pytest.fixture(scope="module")
def exact(
    sample: RetrievalDataset, embedder: Embedder, cache: EmbeddingCache
) -> dict[str, dict[str, float]]:
    """Every train query's documents with their scores, best first, by brute force."""
    doc_ids = list(sample.corpus)
    texts = [sample.corpus[d].full_text for d in doc_ids]
    docs, _ = encode_cached(embedder, texts, "document", cache)
    qids = list(sample.split_qrels("train"))
    queries, _ = encode_cached(embedder, [sample.queries[q].text for q in qids], "query", cache)
    scores = queries @ docs.T
    order = np.argsort(-scores, axis=1, kind="stable")
    return {q: {doc_ids[j]: float(scores[i, j]) for j in order[i]} for i, q in enumerate(qids)}


def in_window(scored: dict[str, float], negatives: list[str], spec: MiningSpec) -> bool:
    """Whether each negative scores like a rank in the window (near-ties may swap ranks)."""
    ranked = list(scored.values())
    high, low = ranked[spec.range_min - 1] + TIE, ranked[spec.range_max - 1] - TIE
    return all(low <= scored[d] <= high for d in negatives)


@pytest.fixture(scope="module")
def mine(embedder: Embedder, cache: EmbeddingCache) -> Mine:
    """``mine_negatives`` with the tiny model and the shared cache."""
    return lambda ds, spec=SPEC, **kw: mine_negatives(ds, embedder, spec, cache=cache, **kw)


@pytest.fixture(scope="module")
def mined(sample: RetrievalDataset, mine: Mine) -> Mined:
    return mine(sample)


def positives(ds: RetrievalDataset, qid: str) -> set[str]:
    return {d for qrels in ds.qrels.values() for d, g in qrels.get(qid, {}).items() if g > 0}


def test_every_train_query_gets_num_negatives_and_no_positive(mined: Mined) -> None:
    ds, report = mined
    train = ds.split_qrels("train")
    assert set(ds.negatives) == set(train) and report.queries == len(train) == 809
    for qid, negatives in ds.negatives.items():
        assert len(negatives) == SPEC.num_negatives == len(set(negatives))
        assert not set(negatives) & positives(ds, qid)
    assert report.negatives_per_query == {"mean": 4.0, "min": 4, "max": 4}
    assert report.queries_short == report.queries_without_negatives == 0


def test_positives_of_other_splits_are_excluded(
    sample: RetrievalDataset, mine: Mine, mined: Mined
) -> None:
    first = {q: negs[0] for q, negs in list(mined[0].negatives.items())[:50]}
    qrels = {**sample.qrels, "extra": {q: {d: 1} for q, d in first.items()}}
    ds, report = mine(dataclasses.replace(sample, qrels=qrels))
    assert all(first[q] not in ds.negatives[q] for q in first)
    assert report.removed["positive"] == mined[1].removed["positive"] + len(first)


def test_documents_with_a_positives_or_the_querys_text_are_excluded(
    sample: RetrievalDataset, mine: Mine
) -> None:
    qids = list(sample.split_qrels("train"))[:20]
    copies = {}
    for qid in qids:
        pos = next(iter(sample.split_qrels("train")[qid]))
        copies[f"copy-{qid}"] = Document(
            f"copy-{qid}", sample.corpus[pos].text, sample.corpus[pos].title
        )
        copies[f"echo-{qid}"] = Document(f"echo-{qid}", sample.queries[qid].text)
    ds = dataclasses.replace(sample, corpus={**sample.corpus, **copies})
    spec = dataclasses.replace(SPEC, range_min=0, sampling="top", num_negatives=40)
    mined_ds, report = mine(ds, spec)
    for qid, negatives in mined_ds.negatives.items():
        banned = {ds.corpus[d].full_text for d in positives(ds, qid)} | {ds.queries[qid].text}
        assert not any(ds.corpus[d].full_text in banned for d in negatives)
    assert report.removed["duplicate_text"] >= len(qids)  # at least the positives' copies rank


def test_window_and_top_sampling_follow_the_ranking(
    sample: RetrievalDataset, mine: Mine, exact: dict[str, dict[str, float]]
) -> None:
    spec = dataclasses.replace(SPEC, sampling="top")
    ds, _ = mine(sample, spec)
    for qid, negatives in ds.negatives.items():
        scored = exact[qid]
        assert in_window(scored, negatives, spec)
        window = list(scored)[spec.range_min : spec.range_max]
        best = [d for d in window if d not in positives(ds, qid)][: spec.num_negatives]
        got = [scored[d] for d in negatives]
        assert all(a >= b - TIE for a, b in pairwise(got))  # best first
        np.testing.assert_allclose(got, [scored[d] for d in best], atol=TIE)


def test_random_sampling_stays_in_the_window_and_is_seeded(
    sample: RetrievalDataset, mine: Mine, mined: Mined, exact: dict[str, dict[str, float]]
) -> None:
    assert all(in_window(exact[q], negs, SPEC) for q, negs in mined[0].negatives.items())
    again, _ = mine(sample)
    other, _ = mine(sample, dataclasses.replace(SPEC, seed=7))
    assert again.negatives == mined[0].negatives
    assert other.negatives != mined[0].negatives


def test_batch_size_does_not_change_the_result(
    sample: RetrievalDataset, mine: Mine, mined: Mined
) -> None:
    one_by_one = dataclasses.replace(SPEC, batch_size=1)
    ds, report = mine(sample, one_by_one)
    assert ds.negatives == mined[0].negatives
    same = ("removed", "scores", "negatives_per_query", "candidates")
    assert all(getattr(report, k) == getattr(mined[1], k) for k in same)


def test_report_counts_add_up(mined: Mined) -> None:
    ds, report = mined
    assert report.candidates == report.queries * SPEC.range_max
    assert report.candidates == report.negatives + sum(report.removed.values())
    assert report.removed["window"] >= report.queries * SPEC.range_min - report.removed["positive"]
    assert report.removed["sampling"] > 0 and report.removed["margin"] == 0
    pairs = sum(1 for judged in ds.split_qrels("train").values() for g in judged.values() if g)
    assert report.scores["positives"].count == pairs
    assert report.scores["negatives"].count == report.negatives
    assert report.scores["candidates"].count == report.candidates
    assert set(report.timings) >= {"encode_corpus", "encode_queries", "index", "mine", "total"}
    assert json.loads(json.dumps(report.as_dict()))["spec"]["range_max"] == SPEC.range_max


def test_other_queries_keep_their_negatives_and_the_input_is_untouched(
    sample: RetrievalDataset, mine: Mine
) -> None:
    test_qid = next(iter(sample.split_qrels("test")))
    given = dataclasses.replace(sample, negatives={test_qid: [next(iter(sample.corpus))]})
    ds, _ = mine(given)
    assert ds.negatives[test_qid] == given.negatives[test_qid]
    assert list(given.negatives) == [test_qid]


def test_progress_reports_stages_and_cancel_stops(sample: RetrievalDataset, mine: Mine) -> None:
    seen: dict[str, tuple[int, int]] = {}
    spec = dataclasses.replace(SPEC, batch_size=300)
    mine(sample, spec, progress=lambda s, d, t: seen.__setitem__(s, (d, t)))
    assert seen["mine"] == (809, 809) and seen["encode_corpus"] == (2000, 2000)
    polls = iter([False, False, False, True])
    with pytest.raises(Cancelled):
        mine(sample, spec, should_cancel=lambda: next(polls))


# -- filters on hand-made candidates ---------------------------------------------------

IDS = ["a", "b", "c", "d", "e", "f", "g", "h"]
SCORES = [0.95, 0.9, 0.85, 0.8, 0.77, 0.7, 0.6, 0.5]


def select(spec: MiningSpec, *, positive_scores=(0.9, 0.8), rng=None, **kw):
    args = {"positives": {"b"}, "duplicates": set(), **kw}
    return select_negatives(
        IDS, SCORES, positive_scores=positive_scores, spec=spec, rng=rng, **args
    )


def test_relative_margin_uses_the_lowest_positive_score() -> None:
    spec = MiningSpec(range_min=0, range_max=8, num_negatives=8, relative_margin=0.05)
    picked = select(spec)  # ceiling 0.8 - 0.04 = 0.76
    assert picked.ids == ["f", "g", "h"]
    assert picked.removed == {
        "positive": 1,
        "duplicate_text": 0,
        "window": 0,
        "max_score": 0,
        "margin": 4,
        "sampling": 0,
    }
    assert math.isclose(margin_ceiling([-0.2], spec), -0.21)  # |p|: lower, never higher


def test_absolute_margin_max_score_and_filter_order() -> None:
    spec = MiningSpec(
        range_min=1,
        range_max=7,
        num_negatives=6,
        relative_margin=None,
        absolute_margin=0.05,
        max_score=0.8,
    )
    picked = select(spec, duplicates={"c"})  # margin ceiling 0.75; "h" is out of the window
    assert picked.ids == ["f", "g"] and picked.ranks == [5, 6]
    assert picked.removed == {
        "positive": 1,
        "duplicate_text": 1,
        "window": 2,
        "max_score": 0,
        "margin": 2,
        "sampling": 0,
    }
    no_margin = dataclasses.replace(spec, absolute_margin=None)
    assert select(no_margin).removed["max_score"] == 1  # "c" (0.85); "a" is out of the window


def test_sampling_keeps_the_best_or_a_seeded_draw_of_the_survivors() -> None:
    spec = MiningSpec(range_min=0, range_max=8, num_negatives=3, relative_margin=None)
    top = select(dataclasses.replace(spec, sampling="top"))
    assert top.ids == ["a", "c", "d"] and top.removed["sampling"] == 4
    draws = [select(spec, rng=np.random.default_rng(s)) for s in range(20)]
    assert all(len(d.ids) == 3 and d.ranks == sorted(d.ranks) and "b" not in d.ids for d in draws)
    assert len({tuple(d.ids) for d in draws}) > 1
    assert select(spec, rng=np.random.default_rng(1)) == select(spec, rng=np.random.default_rng(1))
    short = select(spec, positives=set(IDS[:6]))
    assert short.ids == ["g", "h"] and short.removed["sampling"] == 0


class VectorEmbedder:
    """Texts to fixed unit vectors, so every score is known in advance."""

    fingerprint = "hand-made"
    model = SimpleNamespace(ref="hand-made")

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors

    def encode(self, texts: list[str], side: str, progress: object = None) -> np.ndarray:
        return np.asarray([self.vectors[t] for t in texts], dtype=np.float32)


def test_margin_end_to_end_with_controlled_scores() -> None:
    scores = {"p1": 0.9, "p2": 0.8, "n1": 0.85, "n2": 0.77, "n3": 0.7, "n4": 0.5}
    vectors = {f"text {d}": [s, math.sqrt(1 - s * s)] for d, s in scores.items()}
    ds = RetrievalDataset(
        corpus={d: Document(d, f"text {d}") for d in scores},
        queries={"q": Query("q", "question")},
        qrels={"train": {"q": {"p1": 1, "p2": 1}}},
    )
    spec = MiningSpec(range_min=0, range_max=6, num_negatives=4, sampling="top")
    embedder = VectorEmbedder({**vectors, "question": [1.0, 0.0]})
    mined_ds, report = mine_negatives(ds, embedder, spec)  # type: ignore[arg-type]
    assert mined_ds.negatives == {"q": ["n3", "n4"]}  # 0.85 and 0.77 are above 0.8 * 0.95
    assert report.removed["margin"] == 2 and report.queries_short == 1
    assert report.scores["positives"].count == 2
    assert math.isclose(report.scores["negatives"].mean or 0, 0.6, abs_tol=1e-6)


@pytest.mark.parametrize(
    "change",
    [
        {"range_min": 10, "range_max": 10},
        {"range_min": -1},
        {"num_negatives": 0},
        {"range_min": 0, "range_max": 3, "num_negatives": 4},
        {"sampling": "best"},
        {"relative_margin": 1.0},
        {"max_score": float("nan")},
        {"batch_size": 0},
    ],
)
def test_bad_specs_are_refused(change: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        MiningSpec(**change)  # type: ignore[arg-type]


def test_a_split_without_judged_queries_is_refused(sample: RetrievalDataset, mine: Mine) -> None:
    with pytest.raises(InvalidInput, match="no query with a relevant document"):
        mine(dataclasses.replace(sample, qrels={"train": {}}))


# -- CLI ---------------------------------------------------------------------------------


def test_cli_defaults_are_the_spec_defaults() -> None:
    params = inspect.signature(mine_command).parameters
    for name in (
        "range_min",
        "range_max",
        "num_negatives",
        "sampling",
        "relative_margin",
        "absolute_margin",
        "max_score",
        "seed",
        "split",
    ):
        assert params[name].default == getattr(MiningSpec(), name), name


def test_cli_writes_a_dataset_that_reloads_with_negatives(
    tiny_model_dir: Path, sample_dir: Path, tmp_path: Path
) -> None:
    out, report = tmp_path / "mined.jsonl", tmp_path / "report.json"
    args = [
        "mine",
        "-d",
        str(sample_dir),
        "-m",
        str(tiny_model_dir),
        "-o",
        str(out),
        "--report",
        str(report),
        "--no-cache",
        "--range-min",
        "5",
        "--range-max",
        "40",
        "--num-negatives",
        "4",
        "--relative-margin",
        "0",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "duplicate text" in result.output and "candidates" in result.output
    reloaded = load_dataset(out)  # flag-jsonl: queries with equal texts become one
    assert reloaded.source_format == "flag-jsonl"
    assert set(reloaded.negatives) == set(reloaded.split_qrels("train"))
    assert all(len(n) >= 4 for n in reloaded.negatives.values())
    assert json.loads(report.read_text())["negatives"] == 809 * 4

    refused = CliRunner().invoke(app, [*args[:7], "--to", "beir"])
    assert isinstance(refused.exception, InvalidInput)


def test_the_review_lists_the_negatives_closest_to_a_positive_with_texts(
    mine: Mine, sample: RetrievalDataset, exact: dict[str, dict[str, float]]
) -> None:
    from core.mining.report import REVIEW_CHARS, REVIEW_SIZE

    mined, report = mine(sample)
    train = sample.split_qrels("train")
    margins = sorted(
        min(exact[q][p] for p, g in train[q].items() if g > 0) - exact[q][d]
        for q, negatives in mined.negatives.items()
        if q in exact
        for d in negatives
    )
    review = report.review
    assert len(review) == min(REVIEW_SIZE, len(margins))
    assert [i.margin for i in review] == sorted(i.margin for i in review)
    np.testing.assert_allclose([i.margin for i in review], margins[: len(review)], atol=TIE)
    for item in review:
        assert item.negative_id in mined.negatives[item.query_id]
        assert train[item.query_id][item.positive_id] > 0
        assert item.positive_score - item.negative_score == pytest.approx(item.margin)
        assert item.query == sample.queries[item.query_id].text[:REVIEW_CHARS]
        assert item.negative == sample.corpus[item.negative_id].full_text[:REVIEW_CHARS]
    assert report.as_dict()["review"][0]["negative_id"] == review[0].negative_id

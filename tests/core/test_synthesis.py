"""Offline query synthesis: generators, each filter counted, splits by source document, a
user's test split kept, and the round trip through a real (tiny) model."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.datasets.model import Document, Query, RetrievalDataset
from core.errors import InvalidInput
from core.models.embedder import load_embedder
from core.synthesis.filters import FilterSpec, apply_filters, copy_overlap, word_count
from core.synthesis.generators import Candidate, by_crop, by_inverse_cloze, by_title
from core.synthesis.pipeline import synthesize
from core.synthesis.roundtrip import base_model_ranker
from core.synthesis.spec import SynthesisSpec
from core.training.examples import training_triples, triple_columns, without_query

TOPICS = ["insulin", "malaria", "vaccines", "statins", "asthma", "sepsis", "anemia", "gout"]


def chunk(doc: str, index: int, text: str, title: str = "") -> Document:
    return Document(f"{doc}#{index}", text, title, {"doc_id": doc, "chunk": index})


def corpus_of(n_docs: int = 40) -> dict[str, Document]:
    docs = {}
    for i in range(n_docs):
        topic = TOPICS[i % len(TOPICS)]
        for j in range(2):
            text = (
                f"Study {i} part {j} measured {topic} outcomes in {i * 10 + j} patients. "
                f"The {topic} group improved by {i + j} points over placebo. "
                f"Side effects of {topic} treatment were rare in cohort {i}."
            )
            c = chunk(f"doc{i}", j, text, f"Effect of {topic} in trial number {i}")
            docs[c.id] = c
    return docs


def test_title_queries_are_relevant_to_every_chunk_of_their_document() -> None:
    corpus = corpus_of(3)
    made = by_title(corpus, [corpus["doc1#1"]])
    assert made == [Candidate("Effect of malaria in trial number 1", ("doc1#0", "doc1#1"), "title")]


def test_inverse_cloze_takes_a_sentence_and_crop_a_span_of_the_chunk() -> None:
    chunks = list(corpus_of(4).values())
    for c in by_inverse_cloze(chunks, seed=0):
        assert c.text in chunks_by_id(chunks)[c.chunk_ids[0]].text and c.text.endswith(".")
    crops = by_crop(chunks, seed=0)
    assert crops  # chunks of 30+ words give spans of 8-24 words
    for c in crops:
        assert 8 <= len(c.text.split()) <= 24
        assert c.text in " ".join(chunks_by_id(chunks)[c.chunk_ids[0]].text.split())
    assert by_inverse_cloze(chunks, seed=0) == by_inverse_cloze(chunks, seed=0)  # seeded


def chunks_by_id(chunks: list[Document]) -> dict[str, Document]:
    return {c.id: c for c in chunks}


def test_each_filter_removes_what_it_names_and_counts_it() -> None:
    corpus = {
        "a": Document("a", "Insulin lowers blood sugar in type one diabetes patients quickly."),
        "z": Document("z", "胰岛素可以降低一型糖尿病患者的血糖水平，效果很快。"),
    }
    candidates = [
        Candidate("   ", ("a",), "llm"),  # empty
        Candidate("insulin", ("a",), "llm"),  # too short
        Candidate(" ".join(["word"] * 70), ("a",), "llm"),  # too long
        Candidate("does insulin lower blood sugar", ("a",), "llm"),  # kept
        Candidate("Does  INSULIN lower blood sugar", ("a",), "llm"),  # duplicate
        Candidate("Insulin lowers blood sugar in type one diabetes", ("a",), "llm"),  # copies
        Candidate("Insulin lowers blood sugar in type one diabetes", ("a",), "crop"),  # extractive
        Candidate("胰岛素对血糖有什么作用", ("a",), "llm"),  # wrong language
        Candidate("胰岛素对血糖有什么作用", ("z",), "llm"),  # right language
        Candidate("which drug treats gout flares", ("a",), "llm"),  # fails the round trip
    ]

    def ranker(texts: list[str]) -> list[list[str]]:
        return [["z"] if "gout" in t else ["a", "z"] for t in texts]

    kept, removed = apply_filters(candidates, corpus, FilterSpec(round_trip_k=1), ranker)
    assert removed == {
        "empty": 1,
        "too_short": 1,
        "too_long": 1,
        "duplicate": 1,
        "copies_chunk": 1,
        "wrong_language": 1,
        "round_trip": 1,
    }
    assert [(c.text, c.generator) for c in kept] == [
        ("does insulin lower blood sugar", "llm"),
        ("Insulin lowers blood sugar in type one diabetes", "crop"),
        ("胰岛素对血糖有什么作用", "llm"),
    ]
    assert word_count("胰岛素对血糖") == 6 and copy_overlap("a b", "a b c") == 0.0


def test_splits_are_by_source_document_and_deterministic() -> None:
    corpus = RetrievalDataset(corpus_of(60), {}, name="trials")
    spec = SynthesisSpec(generators=("title", "inverse_cloze"), round_trip_k=0,
                         val_fraction=0.2, test_fraction=0.2)  # fmt: skip
    ds, report = synthesize(corpus, spec)
    sources: dict[str, set[str]] = {}
    for split, qrels in ds.qrels.items():
        for judged in qrels.values():
            for did in judged:
                sources.setdefault(corpus.corpus[did].metadata["doc_id"], set()).add(split)
    assert all(len(splits) == 1 for splits in sources.values())  # a document in one split only
    assert set(ds.qrels) == {"train", "val", "test"}
    assert report.candidates == {"title": 60, "inverse_cloze": 120}
    assert report.kept_after["round_trip"] == sum(len(q) for q in ds.qrels.values())
    assert report.splits["generator:title"] + report.splits["generator:inverse_cloze"] == sum(
        len(q) for q in ds.qrels.values()
    )
    again, _ = synthesize(corpus, spec)
    assert again.qrels == ds.qrels


def test_a_users_labeled_test_split_is_kept_and_its_documents_are_not_trained_on() -> None:
    corpus = corpus_of(30)
    queries = {"u1": Query("u1", "does insulin help"), "other": Query("other", "not judged")}
    test = {"u1": {"doc0#0": 1}}
    ds, report = synthesize(
        RetrievalDataset(corpus, queries, {"test": test}),
        SynthesisSpec(generators=("title",), round_trip_k=0),
        user_test=(queries, test),
    )
    assert ds.qrels["test"] == test and "other" not in ds.queries
    assert report.splits["on_test_documents"] == 1  # doc0's title query is dropped
    trained = {did for judged in ds.qrels["train"].values() for did in judged}
    assert not trained & {"doc0#0", "doc0#1"}


def test_the_round_trip_keeps_queries_whose_chunk_the_base_model_finds(
    tiny_model_dir: Path,
) -> None:
    corpus = corpus_of(24)
    embedder = load_embedder(str(tiny_model_dir))
    ranker = base_model_ranker(embedder, corpus, k=3)
    spec = SynthesisSpec(generators=("inverse_cloze",), round_trip_k=3, test_fraction=0.0)
    ds, report = synthesize(RetrievalDataset(corpus, {}), spec, ranker=ranker)
    kept = report.kept_after["wrong_language"]
    assert 0 < report.kept_after["round_trip"] < kept  # a tiny random model misses some
    top = ranker([ds.queries[q].text for q in ds.qrels["train"]])
    for (qid, judged), hits in zip(ds.qrels["train"].items(), top, strict=True):
        assert set(judged) & set(hits), qid


def test_bad_specs_are_refused_naming_the_field() -> None:
    for bad, field in (
        ({"generators": ()}, "generators"),
        ({"round_trip_k": -1}, "round_trip_k"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "test_fraction"),
        ({"prompt_template": "no placeholder"}, "prompt_template"),
    ):
        with pytest.raises(InvalidInput) as refused:
            SynthesisSpec(**bad)
        assert refused.value.param == field
    with pytest.raises(InvalidInput) as unconfigured:
        synthesize(RetrievalDataset(corpus_of(2), {}), SynthesisSpec(generators=("llm",)))
    assert unconfigured.value.code == "llm_not_configured"


def test_a_query_copied_from_its_chunk_is_cut_out_of_the_training_positive() -> None:
    corpus = RetrievalDataset(corpus_of(8), {}, name="trials")
    spec = SynthesisSpec(generators=("title", "inverse_cloze"), round_trip_k=0,
                         val_fraction=0.0, test_fraction=0.0)  # fmt: skip
    ds, _ = synthesize(corpus, spec)
    triples = training_triples(ds, "train", 1)
    cut = triple_columns(ds, triples, cut_query=True)
    kept = triple_columns(ds, triples)
    for row, query, positive in zip(triples, cut["anchor"], cut["positive"], strict=True):
        doc = ds.corpus[row.positive_id]
        assert query not in positive and query in doc.full_text
        assert positive.split() == doc.full_text.replace(query, "", 1).split()
    assert kept["positive"] == [ds.corpus[t.positive_id].full_text for t in triples]
    assert without_query("not there", "a text") == "a text"
    assert without_query("a text", "a text") == "a text"  # nothing would be left
    assert without_query("B c.", "A b. B c. D e.") == "A b. D e."

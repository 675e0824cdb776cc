"""Readers and writers: round trips, format detection and forcing, and the shared SciFact copy."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.datasets import (
    Document,
    Query,
    RetrievalDataset,
    detect_format,
    load_dataset,
    save_dataset,
)
from core.datasets.textids import text_id
from core.errors import DatasetInvalid, InvalidInput, NotFound

SCIFACT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "scifact"


def sample(*, titles: bool = False) -> RetrievalDataset:
    """Three queries, five documents, one split; d4 is judged nowhere (it serves as a negative)."""
    corpus = {
        f"d{i}": Document(f"d{i}", f"document number {i}", f"Title {i}" if titles else "")
        for i in range(5)
    }
    queries = {f"q{i}": Query(f"q{i}", f"what is {i}?") for i in range(3)}
    qrels = {"train": {"q0": {"d0": 1, "d1": 1}, "q1": {"d2": 1}, "q2": {"d3": 1}}}
    return RetrievalDataset(corpus, queries, qrels, name="sample")


def rich_sample() -> RetrievalDataset:
    """``sample`` with instructions, answers, negatives and scores for every judged pair."""
    ds = sample()
    ds.queries["q0"] = Query("q0", "what is 0?", instruction="Find the passage", answer="zero")
    ds.negatives = {"q0": ["d4", "d2"], "q1": ["d4"]}
    ds.scores = {
        "q0": {"d0": 0.9, "d1": 0.8, "d4": 0.1, "d2": 0.2},
        "q1": {"d2": 1.0, "d4": -0.5},
    }
    return ds


def by_text(ds: RetrievalDataset) -> dict[str, object]:
    """The dataset with every id replaced by its text, for formats that carry no ids."""

    def q(qid: str) -> str:
        return ds.queries[qid].text

    def d(did: str) -> str:
        return ds.corpus[did].full_text

    return {
        "docs": sorted(doc.full_text for doc in ds.corpus.values()),
        "queries": sorted(
            (x.text, x.instruction or "", x.answer or "") for x in ds.queries.values()
        ),
        "qrels": {
            split: {(q(qid), d(did), g) for qid, docs in qrels.items() for did, g in docs.items()}
            for split, qrels in ds.qrels.items()
        },
        "negatives": {(q(qid), d(did)) for qid, docs in ds.negatives.items() for did in docs},
        "scores": {
            (q(qid), d(did), s) for qid, docs in ds.scores.items() for did, s in docs.items()
        },
    }


def same_content(a: RetrievalDataset, b: RetrievalDataset) -> bool:
    keys = ("corpus", "queries", "qrels", "negatives", "scores")
    return all(getattr(a, k) == getattr(b, k) for k in keys)


def test_beir_round_trip_keeps_ids_titles_grades_and_every_split(tmp_path: Path) -> None:
    ds = sample(titles=True)
    ds.qrels["test"] = {"q1": {"d4": 2, "d0": 0}}
    out = save_dataset(ds, tmp_path / "mini", "beir")
    back = load_dataset(out)
    assert same_content(ds, back)
    assert (back.name, back.source_format) == ("mini", "beir")
    assert (out / "qrels" / "test.tsv").read_text().splitlines()[0] == "query-id\tcorpus-id\tscore"


def test_beir_keeps_mined_negatives_in_negatives_jsonl(tmp_path: Path) -> None:
    ds = sample()
    ds.negatives = {"q0": ["d4", "d2"], "q1": ["d4"]}
    out = save_dataset(ds, tmp_path / "mined", "beir")
    assert (out / "negatives.jsonl").is_file()
    assert load_dataset(out).negatives == ds.negatives


def test_beir_negatives_with_unknown_ids_are_refused(tmp_path: Path) -> None:
    out = save_dataset(sample(), tmp_path / "bad", "beir")
    (out / "negatives.jsonl").write_text('{"query-id": "q0", "corpus-ids": ["d4", "nope"]}\n')
    with pytest.raises(DatasetInvalid) as info:
        load_dataset(out)
    issue = info.value.issues[0]
    assert (issue.code, issue.file, issue.line, issue.field) == (
        "unknown_doc_id",
        "negatives.jsonl",
        1,
        "corpus-ids",
    )


def test_beir_writes_only_the_split_asked_for(tmp_path: Path) -> None:
    ds = sample()
    ds.qrels["test"] = {"q1": {"d4": 1}}
    back = load_dataset(save_dataset(ds, tmp_path / "only", "beir", split="test"))
    assert back.splits == ["test"]


def test_beir_qrels_without_header_and_int_ids_are_read(tmp_path: Path) -> None:
    root = tmp_path / "raw"
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_text('{"_id": 7, "title": "T", "text": "x", "metadata": {}}\n')
    (root / "queries.jsonl").write_text('{"_id": "1", "text": "q"}\n')
    (root / "qrels" / "dev.tsv").write_text("1\t7\t1\n")
    ds = load_dataset(root)
    assert ds.qrels == {"dev": {"1": {"7": 1}}}
    assert ds.corpus["7"] == Document("7", "x", "T")


def test_rag_json_round_trip_keeps_ids_answers_and_negatives(tmp_path: Path) -> None:
    ds = rich_sample()
    ds.scores = {}
    ds.queries["q0"] = Query("q0", "what is 0?", answer="zero")
    back = load_dataset(save_dataset(ds, tmp_path / "qa.json", "rag-json"))
    assert same_content(ds, back)
    assert (back.name, back.source_format) == ("qa", "rag-json")


def test_llama_index_file_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "train_dataset.json"
    llama = {
        "queries": {"6f1c": "Who wrote it?", "a2b3": "When?"},
        "corpus": {"node-1": "Ada wrote it.", "node-2": "In 1843."},
        "relevant_docs": {"6f1c": ["node-1"], "a2b3": ["node-2"]},
        "mode": "text",
    }
    path.write_text(json.dumps(llama))
    ds = load_dataset(path, split="dev")
    assert ds.qrels == {"dev": {"6f1c": {"node-1": 1}, "a2b3": {"node-2": 1}}}
    assert ds.corpus["node-2"].text == "In 1843."


def test_flag_jsonl_round_trip_keeps_texts_prompts_negatives_and_scores(tmp_path: Path) -> None:
    ds = rich_sample()
    ds.queries["q0"] = Query("q0", "what is 0?", instruction="Find the passage")
    back = load_dataset(save_dataset(ds, tmp_path / "flag.jsonl", "flag-jsonl"))
    assert by_text(back) == by_text(ds)
    again = load_dataset(save_dataset(back, tmp_path / "again.jsonl", "flag-jsonl"))
    assert same_content(back, again)


def test_flag_jsonl_ids_come_from_texts_and_are_shared(tmp_path: Path) -> None:
    path = tmp_path / "flag.jsonl"
    lines = [
        {"query": "a", "pos": ["shared"], "neg": ["n1"]},
        {"query": "b", "pos": ["n1"], "neg": ["shared"], "prompt": "Retrieve"},
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    ds = load_dataset(path)
    shared, n1 = text_id("d-", "shared"), text_id("d-", "n1")
    assert shared == "d-" + hashlib.sha1(b"shared").hexdigest()[:16]
    assert set(ds.corpus) == {shared, n1}
    assert ds.qrels["train"][text_id("q-", "a")] == {shared: 1}
    assert ds.negatives[text_id("q-", "b")] == [shared]
    assert ds.queries[text_id("q-", "b")].instruction == "Retrieve"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
@pytest.mark.parametrize("with_negatives", [False, True])
def test_pairs_round_trip(tmp_path: Path, suffix: str, with_negatives: bool) -> None:
    ds = rich_sample() if with_negatives else sample()
    ds.scores = {}
    if not with_negatives:
        ds.corpus.pop("d4")  # pairs only hold judged documents
    ds.queries["q0"] = Query("q0", "what is 0?")
    path = save_dataset(ds, tmp_path / f"pairs{suffix}", "pairs")
    back = load_dataset(path)
    assert by_text(back) == by_text(ds)
    assert back.source_format == "pairs"
    header = path.read_text().splitlines()[0]
    assert ("negative" in header) is with_negatives


def test_pairs_accept_query_column_and_rows_without_negative(tmp_path: Path) -> None:
    path = tmp_path / "triplets.csv"
    path.write_text("query,positive,negative\nq one,p one,n one\nq one,p two,\n")
    ds = load_dataset(path)
    qid = text_id("q-", "q one")
    assert set(ds.qrels["train"][qid]) == {text_id("d-", "p one"), text_id("d-", "p two")}
    assert ds.negatives == {qid: [text_id("d-", "n one")]}


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_scored_pairs_round_trip(tmp_path: Path, suffix: str) -> None:
    ds = rich_sample()
    ds.qrels, ds.negatives = {}, {}
    ds.queries["q0"] = Query("q0", "what is 0?")
    ds.queries.pop("q2")
    ds.corpus.pop("d3")
    back = load_dataset(save_dataset(ds, tmp_path / f"sts{suffix}", "scored-pairs"))
    assert by_text(back) == by_text(ds)
    assert back.qrels == {}


@pytest.mark.parametrize(
    ("name", "content", "fmt"),
    [
        ("qa.json", {"queries": {}, "corpus": {}, "relevant_docs": {}}, "rag-json"),
        ("f.jsonl", [{"query": "a", "pos": ["b"]}], "flag-jsonl"),
        ("p.jsonl", [{"anchor": "a", "positive": "b"}], "pairs"),
        ("p2.jsonl", [{"query": "a", "positive": "b", "negative": "c"}], "pairs"),
        ("s.jsonl", [{"sentence1": "a", "sentence2": "b", "score": 0.5}], "scored-pairs"),
        ("p.csv", "anchor,positive\na,b\n", "pairs"),
        ("s.tsv", "sentence1\tsentence2\tscore\na\tb\t1\n", "scored-pairs"),
    ],
)
def test_detect_format(tmp_path: Path, name: str, content: object, fmt: str) -> None:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, list):
        path.write_text("".join(json.dumps(x) + "\n" for x in content))
    else:
        path.write_text(json.dumps(content))
    assert detect_format(str(path)) == fmt


def test_detect_format_of_a_beir_folder(tmp_path: Path) -> None:
    folder = save_dataset(sample(), tmp_path / "b", "beir")
    assert detect_format(folder) == "beir"


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("corpus.jsonl", '{"_id": "1", "text": "a BEIR corpus file alone"}\n'),
        ("other.json", '{"questions": []}'),
        ("notes.txt", "hello\n"),
    ],
)
def test_detect_format_rejects_what_it_does_not_know(
    tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DatasetInvalid) as err:
        detect_format(path)
    assert err.value.code == "unknown_format"
    assert "flag-jsonl" in (err.value.issues[0].expected or "")


def test_detect_format_of_an_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalid) as err:
        detect_format(tmp_path)
    assert err.value.issues[0].code == "unknown_format"


def test_forcing_a_format_reads_the_file_as_that_format(tmp_path: Path) -> None:
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "a", "positive": "b"}\n')
    assert load_dataset(path).source_format == "pairs"
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(path, "flag-jsonl")
    assert (err.value.issues[0].code, err.value.issues[0].field) == ("missing_field", "pos")


def test_unknown_format_names_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as err:
        load_dataset(tmp_path, "parquet")
    assert (err.value.code, err.value.param) == ("unknown_format", "fmt")
    with pytest.raises(InvalidInput):
        save_dataset(sample(), tmp_path / "x", "parquet")


def test_saving_a_missing_split_names_the_splits(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="splits: train"):
        save_dataset(sample(), tmp_path / "x.jsonl", "pairs", split="test")


def test_saving_needs_a_split_when_there_are_several_and_no_train(tmp_path: Path) -> None:
    ds = sample()
    ds.qrels = {"a": ds.qrels["train"], "b": ds.qrels["train"]}
    with pytest.raises(InvalidInput) as err:
        save_dataset(ds, tmp_path / "x.jsonl", "pairs")
    assert err.value.param == "split"


def test_loads_the_shared_scifact_copy() -> None:
    if not SCIFACT.is_dir():
        pytest.skip("needs ../shared/datasets (not in a fresh clone)")
    ds = load_dataset(SCIFACT)
    assert (len(ds.corpus), len(ds.queries)) == (5183, 1109)
    assert {split: len(qrels) for split, qrels in ds.qrels.items()} == {"train": 809, "test": 300}
    assert (ds.name, ds.source_format) == ("scifact", "beir")

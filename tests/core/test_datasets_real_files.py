"""Files as other tools write them: nothing is dropped or reinterpreted without a word."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from core.datasets import dataset_stats, load_dataset, save_dataset
from core.datasets.options import ReadOptions, parse_columns
from core.datasets.split import hold_out
from core.datasets.stats import ModelLengths
from core.errors import DatasetInvalid, InvalidInput, NotFound


def jsonl(path: Path, *rows: dict[str, object]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def table(path: Path, header: list[str], *rows: list[str]) -> Path:
    delimiter = "\t" if path.suffix == ".tsv" else ","
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, delimiter=delimiter)
        writer.writerows([header, *rows])
    return path


def judged(ds, split: str = "train") -> set[tuple[str, str]]:
    return {
        (ds.queries[q].text, ds.corpus[d].text)
        for q, docs in ds.qrels.get(split, {}).items()
        for d, grade in docs.items()
        if grade > 0
    }


def negatives(ds) -> set[tuple[str, str]]:
    return {
        (ds.queries[q].text, ds.corpus[d].text) for q, docs in ds.negatives.items() for d in docs
    }


def warnings(ds) -> dict[str, str]:
    return {w.field or w.code: w.message for w in ds.warnings}


@pytest.mark.parametrize(
    "header", [["anchor", "positive", "label"], ["sentence1", "sentence2", "label"]]
)
def test_labeled_pairs_with_label_0_are_negatives_not_relevant(tmp_path: Path, header) -> None:
    path = table(
        tmp_path / "labeled.csv", header, ["cats", "a cat sleeps", "1"], ["cats", "a car", "0"]
    )
    ds = load_dataset(path)
    assert judged(ds) == {("cats", "a cat sleeps")}
    assert negatives(ds) == {("cats", "a car")}
    assert not ds.warnings


def test_a_graded_label_is_refused_with_the_way_to_read_it_as_a_score(tmp_path: Path) -> None:
    path = table(tmp_path / "sts.csv", ["sentence1", "sentence2", "label"], ["a", "b", "0.7"])
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(path)
    assert err.value.issues[0].code == "bad_label"
    assert "--columns score=label" in err.value.issues[0].message
    scored = load_dataset(path, options=ReadOptions(parse_columns("score=label")))
    assert scored.source_format == "scored-pairs" and len(scored.scores) == 1


def test_n_tuples_keep_every_negative(tmp_path: Path) -> None:
    row = {"anchor": "q", "positive": "p", **{f"negative_{i}": f"n{i}" for i in range(1, 12)}}
    ds = load_dataset(jsonl(tmp_path / "ntuple.jsonl", row))
    assert [ds.corpus[d].text for d in ds.negatives[next(iter(ds.queries))]] == [
        f"n{i}" for i in range(1, 12)
    ]
    assert not ds.warnings


def test_flag_type_normal_is_read_and_other_types_are_refused(tmp_path: Path) -> None:
    normal = {"query": "q", "pos": ["p"], "neg": ["n"], "type": "normal"}
    assert not load_dataset(jsonl(tmp_path / "a.jsonl", normal)).warnings
    clustering = {"query": "q", "pos": ["p"], "neg": ["n"], "type": "symmetric_clustering"}
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(jsonl(tmp_path / "b.jsonl", clustering))
    issue = err.value.issues[0]
    assert (issue.code, issue.field, issue.line) == ("unsupported_type", "type", 1)
    assert "in-batch negatives" in issue.message


def test_list_valued_pair_fields_are_several_positives_and_negatives(tmp_path: Path) -> None:
    row = {"query": "q", "positive": ["p1", "p2"], "negative": ["n1", "n2", "n3"]}
    ds = load_dataset(jsonl(tmp_path / "t2.jsonl", row))
    assert judged(ds) == {("q", "p1"), ("q", "p2")}
    assert negatives(ds) == {("q", "n1"), ("q", "n2"), ("q", "n3")}


def test_aliases_and_column_mapping_read_other_names(tmp_path: Path) -> None:
    qa = load_dataset(jsonl(tmp_path / "qa.jsonl", {"question": "q", "answer": "a"}))
    assert qa.source_format == "pairs" and judged(qa) == {("q", "a")}
    odd = jsonl(tmp_path / "odd.jsonl", {"ask": "q", "reply": "a", "hard": "n", "src": "web"})
    with pytest.raises(DatasetInvalid):
        load_dataset(odd)
    ds = load_dataset(
        odd, options=ReadOptions(parse_columns("query=ask,positive=reply,negative=hard"))
    )
    assert judged(ds) == {("q", "a")} and negatives(ds) == {("q", "n")}
    assert "column 'src' (1 records) is not read" in warnings(ds)["src"]
    with pytest.raises(InvalidInput, match="cannot map"):
        ReadOptions({"answer_text": "x"})


def test_unknown_columns_are_warnings_with_their_count_in_the_stats(tmp_path: Path) -> None:
    rows = [{"anchor": f"q{i}", "positive": f"p{i}", "source": "wiki"} for i in range(3)]
    stats = dataset_stats(load_dataset(jsonl(tmp_path / "p.jsonl", *rows))).as_dict()
    assert [(w["code"], w["field"]) for w in stats["warnings"]] == [("unused_column", "source")]
    assert "(3 records)" in stats["warnings"][0]["message"]


def rag(tmp_path: Path, **extra: object) -> Path:
    data = {
        "queries": {"q1": "one", "q2": "two", "q3": "three"},
        "corpus": {"d1": "doc one", "d2": "doc two", "d3": "doc three"},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"], "q3": ["d3"]},
        "mode": "text",
        **extra,
    }
    path = tmp_path / "rag.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_rag_json_keeps_its_own_query_splits(tmp_path: Path) -> None:
    ds = load_dataset(rag(tmp_path, queries_split={"train": ["q1", "q2"], "val": ["q3"]}))
    assert {s: sorted(q) for s, q in ds.qrels.items()} == {"train": ["q1", "q2"], "val": ["q3"]}
    with pytest.raises(NotFound, match="no split 'test'"):
        ds.split_qrels("test")  # what `eval --split test` reads


def test_rag_json_splits_must_not_share_a_query(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(rag(tmp_path, queries_split={"train": ["q1", "q3"], "val": ["q3"]}))
    assert err.value.issues[0].code == "overlapping_splits"


def test_fine_tuning_never_trains_on_a_query_of_the_evaluation_split(tmp_path: Path) -> None:
    ds = load_dataset(rag(tmp_path))
    ds.qrels["val"] = {"q3": {"d3": 1}}
    trained, removed = hold_out(ds, "train", "val")
    assert removed == 1 and sorted(trained.qrels["train"]) == ["q1", "q2"]


def test_llama_index_empty_chunk_is_refused_with_a_hint_or_dropped_and_counted(tmp_path):
    data = {
        "queries": {"q1": "one", "q2": "two", "q3": "three"},
        "corpus": {"d1": "doc one", "d2": "   "},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"], "q3": ["d2", "d1"]},
    }
    path = tmp_path / "llama.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(path)
    assert "--drop-empty" in str(err.value)
    ds = load_dataset(path, options=ReadOptions(drop_empty=True))
    assert set(ds.corpus) == {"d1"} and ds.qrels["train"] == {"q1": {"d1": 1}, "q3": {"d1": 1}}
    assert (
        "dropped 1 empty documents, 0 empty queries and 2 judgments"
        in warnings(ds)["dropped_empty"]
    )


def test_drop_empty_drops_rows_of_pair_files_and_names_their_lines(tmp_path: Path) -> None:
    path = jsonl(
        tmp_path / "p.jsonl", {"anchor": "q", "positive": "p"}, {"anchor": "r", "positive": ""}
    )
    ds = load_dataset(path, options=ReadOptions(drop_empty=True))
    assert judged(ds) == {("q", "p")}
    assert "dropped 1 records with an empty text (lines 2)" in warnings(ds)["dropped_empty"]


def test_tsv_with_quotes_reads_one_record_per_line(tmp_path: Path) -> None:
    path = tmp_path / "sts.tsv"
    lines = [
        "sentence1\tsentence2\tscore",
        '"A man" is playing\tA man plays "guitar\t4.2',
        "A dog runs\tA dog is running\t5.0",
        'She said "hi\tHe left\t0.4',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = load_dataset(path)
    assert len(ds.queries) == 3 and '"A man" is playing' in {q.text for q in ds.queries.values()}
    assert not ds.warnings


def test_csv_records_spanning_lines_are_a_warning_naming_the_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('anchor,positive\nq1,"line one\nline two"\nq2,p2\n', encoding="utf-8")
    ds = load_dataset(path)
    assert len(ds.queries) == 2
    assert "lines 2-3" in warnings(ds)["multiline_records"]


def test_equal_query_texts_with_different_ids_stay_apart_through_conversion(tmp_path: Path):
    data = {
        "queries": {"q1": "what is it?", "q2": "what is it?"},
        "corpus": {"d1": "a cat", "d2": "a dog"},
        "relevant_docs": {"q1": ["d1"], "q2": ["d2"]},
    }
    src = tmp_path / "dup.json"
    src.write_text(json.dumps(data), encoding="utf-8")
    for fmt, name in (("flag-jsonl", "dup.jsonl"), ("pairs", "dup.csv")):
        back = load_dataset(save_dataset(load_dataset(src), tmp_path / name, fmt))
        assert sorted(len(docs) for docs in back.qrels["train"].values()) == [1, 1], fmt


def test_lengths_in_model_tokens_count_texts_over_the_limit(tiny_model_dir: Path, tmp_path: Path):
    from core.models.embedder import load_embedder

    embedder = load_embedder(str(tiny_model_dir))
    long = " ".join(["document"] * 200)
    ds = load_dataset(jsonl(tmp_path / "p.jsonl", {"anchor": "q", "positive": long}))
    lengths = ModelLengths.of(
        ds, model="tiny", max_seq_length=embedder.max_seq_length, count=embedder.count_tokens
    )
    assert lengths.max_seq_length == 64 and lengths.documents_over_max == 1
    assert lengths.doc_tokens.max > 200 and lengths.queries_over_max == 0
    assert dataset_stats(ds, lengths).as_dict()["model_lengths"]["documents_over_max"] == 1


def test_a_mapped_column_never_silently_replaces_one_of_the_same_name(tmp_path: Path) -> None:
    row = {"query": "old", "question": "new", "positive": "p"}
    ds = load_dataset(jsonl(tmp_path / "p.jsonl", row), options=ReadOptions({"query": "question"}))
    assert [q.text for q in ds.queries.values()] == ["new"]
    assert "query (replaced)" in warnings(ds)


def test_an_empty_positive_list_is_an_issue(tmp_path: Path) -> None:
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(jsonl(tmp_path / "p.jsonl", {"query": "q", "positive": []}))
    assert (err.value.issues[0].code, err.value.issues[0].field) == ("bad_type", "positive")


def test_rag_json_splits_survive_conversion(tmp_path: Path) -> None:
    ds = load_dataset(rag(tmp_path, queries_split={"train": ["q1", "q2"], "val": ["q3"]}))
    for fmt, name in (("rag-json", "out.json"), ("beir", "out-beir")):
        back = load_dataset(save_dataset(ds, tmp_path / name, fmt))
        assert {s: sorted(q) for s, q in back.qrels.items()} == {
            "train": ["q1", "q2"],
            "val": ["q3"],
        }


def test_beir_fields_that_are_not_read_are_warnings(tmp_path: Path) -> None:
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    jsonl(
        root / "corpus.jsonl",
        {"_id": "d1", "text": "t", "metadata": {"url": "u"}},
        {"_id": "d2", "text": "t", "metadata": "not an object"},
    )
    jsonl(root / "queries.jsonl", {"_id": "q1", "text": "q", "metadata": {}})
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    ds = load_dataset(root)
    assert ds.corpus["d1"].metadata == {"url": "u"}  # an object is kept (ingest provenance)
    assert [(w.file, w.field) for w in ds.warnings] == [("corpus.jsonl", "metadata")]


def test_labeled_lists_read_label_0_texts_as_negatives(tmp_path: Path) -> None:
    row = {"anchor": "q", "positive": ["p", "n1", "n2"], "labels": [1, 0, 0]}
    ds = load_dataset(jsonl(tmp_path / "list.jsonl", row))
    assert judged(ds) == {("q", "p")} and negatives(ds) == {("q", "n1"), ("q", "n2")}
    bad = {"anchor": "q", "positive": ["p", "n1"], "labels": [1, 0.5]}
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(jsonl(tmp_path / "bad.jsonl", bad))
    assert err.value.issues[0].code == "bad_label"


def test_tsv_quotes_can_be_asked_for(tmp_path: Path) -> None:
    path = tmp_path / "p.tsv"
    path.write_text('anchor\tpositive\nq1\t"two\nlines"\n', encoding="utf-8")
    with pytest.raises(DatasetInvalid) as err:  # without quoting, line 3 is a row of its own
        load_dataset(path)
    assert (err.value.issues[0].code, err.value.issues[0].line) == ("bad_csv", 3)
    quoted = load_dataset(path, options=ReadOptions(tsv_quotes=True))
    assert judged(quoted) == {("q1", "two\nlines")}
    assert "lines 2-3" in warnings(quoted)["multiline_records"]

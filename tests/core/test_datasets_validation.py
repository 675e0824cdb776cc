"""Bad data raises ``DatasetInvalid`` with issues located by file, line and field; no tracebacks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.datasets import Document, Query, RetrievalDataset, load_dataset, save_dataset, validate
from core.datasets.validate import MAX_ISSUES
from core.errors import DataIssue, DatasetInvalid

CORPUS = '{"_id": "d1", "title": "", "text": "one"}\n{"_id": "d2", "text": "two"}\n'
QUERIES = '{"_id": "q1", "text": "first?"}\n{"_id": "q2", "text": "second?"}\n'
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\n"


def beir(tmp_path: Path, changed: dict[str, str] | None = None) -> Path:
    """A valid BEIR folder, with the files in ``changed`` replaced."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    files = {"corpus.jsonl": CORPUS, "queries.jsonl": QUERIES, "qrels/test.tsv": QRELS}
    for name, text in (files | (changed or {})).items():
        (root / name).write_text(text)
    return root


def jsonl(tmp_path: Path, *records: object, name: str = "data.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def issues_of(path: Path, fmt: str | None = None) -> list[DataIssue]:
    with pytest.raises(DatasetInvalid) as err:
        load_dataset(path, fmt)
    return err.value.issues


def where(issue: DataIssue) -> tuple[object, ...]:
    return issue.code, issue.file, issue.line, issue.field


def test_valid_beir_folder_loads(tmp_path: Path) -> None:
    ds = load_dataset(beir(tmp_path))
    assert ds.qrels == {"test": {"q1": {"d1": 1}}}


def test_bad_encoding_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_bytes(b'{"anchor": "a", "positive": "b"}\n{"anchor": "caf\xe9", "positive": "b"}\n')
    assert [where(i) for i in issues_of(path, "pairs")] == [("bad_encoding", "p.jsonl", 2, None)]


def test_bad_encoding_in_csv_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes(b"anchor,positive\na,b\nc,d\nna\xefve,e\n")
    assert [where(i) for i in issues_of(path, "pairs")] == [("bad_encoding", "p.csv", 4, None)]


def test_bad_json_lines_are_all_reported(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"anchor": "a", "positive": "b"}, "{not json", "[1, 2]")
    assert [where(i) for i in issues_of(path)] == [
        ("bad_json", "data.jsonl", 2, None),
        ("bad_json", "data.jsonl", 3, None),
    ]


def test_bad_json_in_rag_file_reports_the_line(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text('{\n  "queries": {},\n  "corpus": {,\n}')
    assert [where(i) for i in issues_of(path, "rag-json")] == [("bad_json", "qa.json", 3, None)]


def test_missing_field_names_the_field_and_line(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"anchor": "a", "positive": "b"}, {"anchor": "c", "negative": "d"})
    assert [where(i) for i in issues_of(path, "pairs")] == [
        ("missing_field", "data.jsonl", 2, "positive")
    ]


def test_missing_text_in_beir_corpus(tmp_path: Path) -> None:
    root = beir(tmp_path, {"corpus.jsonl": CORPUS + '{"_id": "d3", "title": "only a title"}\n'})
    assert [where(i) for i in issues_of(root)] == [("missing_field", "corpus.jsonl", 3, "text")]


def test_bad_type_for_pos_that_is_not_a_list(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"query": "a", "pos": ["b"]}, {"query": "c", "pos": "d"})
    issue = issues_of(path)[0]
    assert where(issue) == ("bad_type", "data.jsonl", 2, "pos")
    assert issue.expected == "a list of texts"


def test_empty_text(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('anchor,positive\n"  ",b\n')
    assert [where(i) for i in issues_of(path)] == [("empty_text", "p.csv", 2, "anchor")]


def test_csv_line_numbers_follow_multiline_cells(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text('anchor,positive\n"two\nlines",b\n\n"",c\n')
    assert [where(i) for i in issues_of(path)] == [("empty_text", "p.csv", 5, "anchor")]


def test_duplicate_id_in_beir_corpus(tmp_path: Path) -> None:
    root = beir(tmp_path, {"corpus.jsonl": CORPUS + '{"_id": "d1", "text": "again"}\n'})
    assert [where(i) for i in issues_of(root)] == [("duplicate_id", "corpus.jsonl", 3, "_id")]


def test_duplicate_key_in_rag_json(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    path.write_text(
        '{"queries": {"q": "a", "q": "b"}, "corpus": {"d": "x"}, "relevant_docs": {"q": ["d"]}}'
    )
    assert [where(i) for i in issues_of(path)] == [("duplicate_id", "qa.json", None, "q")]


def test_unknown_ids_in_beir_qrels(tmp_path: Path) -> None:
    root = beir(tmp_path, {"qrels/test.tsv": QRELS + "q9\td1\t1\nq2\td9\t1\n"})
    assert [where(i) for i in issues_of(root)] == [
        ("unknown_query_id", "qrels/test.tsv", 3, "query-id"),
        ("unknown_doc_id", "qrels/test.tsv", 4, "corpus-id"),
    ]


def test_unknown_doc_id_in_rag_json(tmp_path: Path) -> None:
    path = tmp_path / "qa.json"
    data = {
        "queries": {"q": "a"},
        "corpus": {"d": "x"},
        "relevant_docs": {"q": ["d"]},
        "negative_docs": {"q": ["gone"]},
    }
    path.write_text(json.dumps(data))
    assert [where(i) for i in issues_of(path)] == [
        ("unknown_doc_id", "qa.json", None, "negative_docs")
    ]


@pytest.mark.parametrize("score", ["x", "-1", "1.5"])
def test_bad_score_in_beir_qrels(tmp_path: Path, score: str) -> None:
    root = beir(tmp_path, {"qrels/test.tsv": f"{QRELS}q2\td2\t{score}\n"})
    assert [where(i) for i in issues_of(root)] == [("bad_score", "qrels/test.tsv", 3, "score")]


@pytest.mark.parametrize("score", ["nan", "high", "inf"])
def test_bad_score_in_scored_pairs(tmp_path: Path, score: str) -> None:
    path = tmp_path / "sts.csv"
    path.write_text(f"sentence1,sentence2,score\na,b,0.5\nc,d,{score}\n")
    assert [where(i) for i in issues_of(path)] == [("bad_score", "sts.csv", 3, "score")]


def test_flag_scores_must_match_the_texts(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"query": "a", "pos": ["b", "c"], "pos_scores": [1.0]})
    assert [where(i) for i in issues_of(path)] == [("bad_type", "data.jsonl", 1, "pos_scores")]


def test_mixed_formats_names_the_line_that_switches(tmp_path: Path) -> None:
    pair = {"anchor": "a", "positive": "b"}
    path = jsonl(tmp_path, *[pair] * 6, {"query": "c", "pos": ["d"]})
    issue = issues_of(path)[0]
    assert where(issue) == ("mixed_formats", "data.jsonl", 7, None)
    assert issue.expected == "pairs records like line 1"


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_empty_file_is_an_empty_dataset(tmp_path: Path, content: str) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    assert [where(i) for i in issues_of(path)] == [("empty_dataset", "empty.jsonl", None, None)]
    assert [i.code for i in issues_of(path, "flag-jsonl")] == ["empty_dataset"]


@pytest.mark.parametrize("missing", ["queries.jsonl", "qrels/test.tsv"])
def test_missing_file_in_beir_folder(tmp_path: Path, missing: str) -> None:
    root = beir(tmp_path)
    (root / missing).unlink()
    issues = issues_of(root)
    assert [i.code for i in issues] == ["missing_file"]
    assert issues[0].file == Path(missing).parts[0]


def test_missing_path(tmp_path: Path) -> None:
    assert [i.code for i in issues_of(tmp_path / "nope.jsonl")] == ["missing_file"]
    assert [i.code for i in issues_of(tmp_path / "nope.jsonl", "pairs")] == ["missing_file"]


def test_bad_csv_row_with_extra_values(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("anchor,positive\na,b,c\n")
    assert [where(i) for i in issues_of(path)] == [("bad_csv", "p.csv", 2, None)]


def test_issues_are_capped(tmp_path: Path) -> None:
    path = jsonl(tmp_path, {"anchor": "a", "positive": "b"}, *["{"] * (MAX_ISSUES + 10))
    issues = issues_of(path)
    assert len(issues) == MAX_ISSUES
    assert issues[-1].line == MAX_ISSUES + 1


@pytest.mark.parametrize("fmt", ["flag-jsonl", "pairs", "scored-pairs"])
@pytest.mark.parametrize(
    "line",
    [
        "null",
        '"text"',
        '{"query": 1, "pos": null, "neg": {}}',
        '{"query": "a", "pos": [1, null], "pos_scores": "x"}',
        '{"anchor": {}, "positive": [], "negative": 3}',
        '{"sentence1": "a", "sentence2": "b", "score": true}',
        '{"sentence1": null, "sentence2": 2, "score": [1]}',
        '{"query": "a", "pos": ["b"], "neg_scores": [1, 2], "neg": ["c"], "prompt": 5}',
        "{}",
    ],
)
def test_odd_records_never_escape_as_tracebacks(tmp_path: Path, fmt: str, line: str) -> None:
    path = jsonl(tmp_path, line)
    try:
        ds = load_dataset(path, fmt)
    except DatasetInvalid as err:
        assert err.issues
        for issue in err.issues:  # each located on the one line, with what is wrong there
            assert (issue.file, issue.line) == (path.name, 1), issue
            assert issue.code in {"bad_json", "bad_type", "missing_field", "bad_score"}, issue
            assert issue.field is not None or issue.code == "bad_json", issue
    else:  # read through aliases: whatever was not read is named in the warnings
        assert fmt == "pairs"
        assert {w.field for w in ds.warnings} & {"score", "prompt", "neg_scores"}


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"queries": [], "corpus": {"d": 1}, "relevant_docs": {"q": "d"}}',
        '{"queries": {"q": ""}, "corpus": {}, "relevant_docs": {"q": [null]}}',
        '{"queries": {"q": "a"}, "corpus": {"d": "x"}, "relevant_docs": {"q": ["d"]}, '
        '"reference_answers": {"zz": "b"}}',
    ],
)
def test_odd_rag_files_never_escape_as_tracebacks(tmp_path: Path, content: str) -> None:
    path = tmp_path / "qa.json"
    path.write_text(content)
    assert issues_of(path, "rag-json")


def test_validate_finds_semantic_problems_in_memory() -> None:
    ds = RetrievalDataset(
        corpus={"d1": Document("d1", "text"), "d2": Document("d2", " ")},
        queries={"q1": Query("q1", "query")},
        qrels={"train": {"q1": {"d1": 1, "d9": 1}, "q7": {"d1": -1}}},
        negatives={"q1": ["d8"]},
        scores={"q1": {"d1": float("nan")}},
    )
    found = {(i.code, i.field) for i in validate(ds)}
    assert found == {
        ("empty_text", "corpus"),
        ("unknown_doc_id", "qrels.train"),
        ("unknown_query_id", "qrels.train"),
        ("bad_score", "qrels.train"),
        ("unknown_doc_id", "negatives"),
        ("bad_score", "scores"),
    }
    assert [i.code for i in validate(RetrievalDataset({}, {}))] == ["empty_dataset"]


def test_writers_refuse_an_invalid_dataset(tmp_path: Path) -> None:
    ds = RetrievalDataset(
        corpus={"d1": Document("d1", "text")},
        queries={"q1": Query("q1", "query")},
        qrels={"train": {"q1": {"d2": 1}}},
    )
    for fmt in ("beir", "rag-json", "flag-jsonl", "pairs"):
        with pytest.raises(DatasetInvalid) as err:
            save_dataset(ds, tmp_path / f"out.{fmt}.jsonl", fmt)
        assert err.value.code == "unknown_doc_id"

"""Load and save datasets in any supported format, detecting the format when not given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from core.datasets.beir import LAYOUT, read_beir, write_beir
from core.datasets.flag_jsonl import read_flag_jsonl, write_flag_jsonl
from core.datasets.model import RetrievalDataset
from core.datasets.options import ReadOptions
from core.datasets.pairs import read_pairs, write_pairs
from core.datasets.rag_json import KEYS, load_json, read_rag_json, write_rag_json
from core.datasets.records import (
    RECORD_SUFFIXES,
    missing_file,
    read_records,
    record_shape,
    unknown_format,
)
from core.datasets.scored_pairs import read_scored_pairs, write_scored_pairs
from core.datasets.validate import Issues
from core.errors import DataIssue, DatasetInvalid, InvalidInput

FORMATS = ("beir", "rag-json", "flag-jsonl", "pairs", "scored-pairs")
SPLIT_WRITERS = {"rag-json": write_rag_json, "flag-jsonl": write_flag_jsonl, "pairs": write_pairs}
EXPECTED = (
    f"{LAYOUT} (beir); a .json object with {', '.join(KEYS)} (rag-json); "
    ".jsonl/.csv/.tsv records with query + pos (flag-jsonl), anchor / query / question / "
    "sentence1 + positive / pos / answer / sentence2 (pairs), or sentence1 + sentence2 + score "
    "(scored-pairs); other column names can be mapped with --columns FIELD=COLUMN"
)


def detect_format(path: str | Path, options: ReadOptions | None = None) -> str:
    """The format of a dataset file or folder, judged by its layout and first record."""
    path = Path(path)
    if not path.exists():
        raise missing_file(path, EXPECTED)
    if path.is_dir():
        if (path / "corpus.jsonl").is_file():
            return "beir"
        raise unknown_format(path, "the folder has no corpus.jsonl", EXPECTED)
    if path.suffix == ".json":
        data = load_json(path, Issues())
        if all(key in data for key in KEYS):
            return "rag-json"
        raise unknown_format(path, f"the JSON object has keys {sorted(data)}", EXPECTED)
    if path.suffix not in RECORD_SUFFIXES:
        raise unknown_format(path, f"cannot read '{path.suffix}' files", EXPECTED)
    issues = Issues()
    first = next(read_records(path, issues, options), None)
    if first is None:
        empty = DataIssue("empty_dataset", "the file has no records", path.name)
        raise DatasetInvalid(issues=issues.items or [empty])
    shape = record_shape(first.data)
    if shape is None:
        message = f"line {first.line} has fields {sorted(first.data)}"
        raise unknown_format(path, message, EXPECTED)
    return shape


def load_dataset(
    path: str | Path,
    fmt: str | None = None,
    *,
    split: str = "train",
    options: ReadOptions | None = None,
) -> RetrievalDataset:
    """Read a dataset, detecting its format unless ``fmt`` is given.

    ``split`` names the judgments of one-split formats (a RAG JSON with its own
    ``queries_split`` keeps those). Bad data raises ``DatasetInvalid`` listing every issue found
    (up to 50); what was read in a way to know about is in ``ds.warnings``.
    """
    path = Path(path)
    fmt = fmt or detect_format(path, options)
    match fmt:
        case "beir":
            return read_beir(path)
        case "rag-json":
            return read_rag_json(path, split=split, options=options)
        case "flag-jsonl":
            return read_flag_jsonl(path, split=split, options=options)
        case "pairs":
            return read_pairs(path, split=split, options=options)
        case "scored-pairs":
            return read_scored_pairs(path, options=options)
    raise _bad_format(fmt)


def save_dataset(
    ds: RetrievalDataset, path: str | Path, fmt: str, *, split: str | None = None
) -> Path:
    """Write ``ds`` as ``fmt`` and return the path written.

    BEIR and RAG JSON (``queries_split``) get every split, or only ``split``; scored pairs
    ignore splits; the other formats hold one split: ``split``, else the dataset's only split,
    else ``train``.
    """
    path = Path(path)
    if fmt == "beir":
        write_beir(ds if split is None else replace(ds, qrels={split: ds.split_qrels(split)}), path)
    elif fmt == "scored-pairs":
        write_scored_pairs(ds, path)
    elif fmt == "rag-json" and split is None and len(ds.splits) > 1:
        write_rag_json(ds, path, split=ds.splits)  # every split, in queries_split
    elif fmt in SPLIT_WRITERS:
        SPLIT_WRITERS[fmt](ds, path, split=split or _default_split(ds))
    else:
        raise _bad_format(fmt)
    return path


def _default_split(ds: RetrievalDataset) -> str:
    if len(ds.splits) == 1:
        return ds.splits[0]
    if "train" in ds.splits or not ds.splits:
        return "train"  # with no splits at all, the writer reports that 'train' is missing
    raise InvalidInput(
        f"the dataset has splits {', '.join(ds.splits)}: say which one to write", param="split"
    )


def _bad_format(fmt: str) -> InvalidInput:
    return InvalidInput(
        f"unknown format '{fmt}' (formats: {', '.join(FORMATS)})",
        code="unknown_format",
        param="fmt",
    )

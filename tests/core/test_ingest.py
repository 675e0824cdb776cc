"""Ingest raw documents: every reader on files made here, bad files skipped with a reason,
chunks within the model's limit, offsets that point at the chunk text, duplicates once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.datasets.io import load_dataset, save_dataset
from core.errors import InvalidInput
from core.ingest import Chunker, ChunkSpec, files_under, ingest_files, model_tokens, read_documents
from core.ingest.readers import Skipped
from core.models.resolve import resolve_model

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
PARAGRAPH = (
    "Retrieval models map queries and passages to vectors. A passage that answers a query "
    "should lie close to it. Fine-tuning on a team's own documents moves the vectors of its "
    "vocabulary into place. "
)


def prose(n: int, topic: str = "retrieval") -> str:
    """``n`` distinct sentences (so no two chunks of one text are equal)."""
    return "".join(f"Sentence {i} is about {topic} and the number {i * 7}. " for i in range(n))


@pytest.fixture(scope="module")
def tokens():
    return model_tokens(resolve_model(MODEL))


def make_pdf(path: Path, pages: list[str], *, title: str = "", encrypt: bool = False) -> Path:
    """A PDF with a text layer (one string per page; an empty string draws only a shape)."""
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    pdf = canvas.Canvas(str(path), pagesize=A4)
    pdf.setTitle(title)
    for text in pages:
        if text:
            lines = pdf.beginText(40, 800)
            for line in [text[i : i + 90] for i in range(0, len(text), 90)]:
                lines.textLine(line)
            pdf.drawText(lines)
        else:
            pdf.rect(100, 100, 300, 300, fill=1)  # an "image": no text layer
        pdf.showPage()
    pdf.save()
    if encrypt:
        from pypdf import PdfReader, PdfWriter

        writer = PdfWriter(clone_from=PdfReader(path))
        writer.encrypt("secret")
        writer.write(path)
    return path


def make_docx(path: Path, title: str, paragraphs: list[str]) -> Path:
    from docx import Document

    doc = Document()
    doc.add_heading(title, level=1)
    for text in paragraphs:
        doc.add_paragraph(text)
    doc.save(str(path))
    return path


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text(prose(60), "utf-8")
    (root / "guide.md").write_text("# Setting up\n\n" + PARAGRAPH * 3, "utf-8")
    (root / "sub" / "page.html").write_text(
        "<html><head><title>Serving</title><style>p {color: red}</style></head><body>"
        f"<h1>Serving</h1><p>{PARAGRAPH}</p><script>var x = 1;</script><p>{PARAGRAPH}</p>"
        "</body></html>",
        "utf-8",
    )
    make_pdf(root / "paper.pdf", [prose(12, "page one"), prose(12, "page two")], title="A paper")
    make_docx(root / "memo.docx", "Memo", [PARAGRAPH, PARAGRAPH])
    records = [
        {"id": "r1", "title": "First", "text": PARAGRAPH},
        {"_id": "r2", "text": "Another record with its own text."},
    ]
    (root / "records.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), "utf-8")
    (root / "copy.txt").write_text(prose(60), "utf-8")  # the same text as notes.txt
    # files that must be skipped, each with its reason
    make_pdf(root / "locked.pdf", [PARAGRAPH], encrypt=True)
    make_pdf(root / "scan.pdf", ["", ""])
    (root / "empty.md").write_text("", "utf-8")
    (root / "blank.txt").write_text("  \n\n ", "utf-8")
    (root / "latin1.txt").write_bytes("café crème".encode("latin-1"))
    (root / "sheet.xlsx").write_bytes(b"PK\x03\x04 not read")
    (root / "broken.docx").write_bytes(b"not a zip file")
    return root


def test_a_folder_is_read_chunked_and_reported_without_losing_a_good_file(
    folder: Path, tokens
) -> None:
    chunker = Chunker(tokens, ChunkSpec(max_tokens=48, overlap_tokens=8))
    result = ingest_files(files_under(folder), chunker, name="docs")
    report = result.report.as_dict()
    skipped = {s["file"]: s["code"] for s in report["skipped"]}
    assert skipped == {
        "locked.pdf": "encrypted_pdf",
        "scan.pdf": "no_text_layer",
        "empty.md": "empty",
        "blank.txt": "empty",
        "latin1.txt": "undecodable",
        "sheet.xlsx": "unsupported_type",
        "broken.docx": "bad_docx",
    }
    assert report["files"] == 14
    assert report["documents"] == 8  # 7 good files, records.jsonl holds two
    assert report["pages"] == 9  # the PDF has two
    sources = {d.metadata["source"] for d in result.dataset.corpus.values()}
    assert sources == {
        "copy.txt", "guide.md", "sub/page.html", "paper.pdf", "memo.docx", "records.jsonl",
    }  # fmt: skip
    # notes.txt (read after copy.txt) has copy.txt's chunks: stored once, where else in also_in
    copies = [d for d in result.dataset.corpus.values() if d.metadata["source"] == "copy.txt"]
    assert len(copies) > 1 and report["duplicate_chunks"] >= len(copies)
    assert all(d.metadata["also_in"][0]["source"] == "notes.txt" for d in copies)
    assert report["chunks"] == len(result.dataset.corpus)
    assert set(report["tokens_per_chunk"]) == {"p0", "p50", "p90", "p99", "p100"}
    assert report["tokens_per_chunk"]["p100"] <= 48


def test_chunks_fit_the_limit_and_their_offsets_point_at_their_text(folder: Path, tokens) -> None:
    chunker = Chunker(tokens, ChunkSpec(max_tokens=40, overlap_tokens=8))
    result = ingest_files(files_under(folder), chunker)
    texts = {
        (doc.source, doc.id): doc.text
        for path, source in files_under(folder)
        if path.suffix != ".xlsx"
        for doc in _readable(path, source)
    }
    for chunk in result.dataset.corpus.values():
        where = chunk.metadata
        assert tokens.count(chunk.full_text) <= 40  # as the model encodes it: title included
        original = texts[(where["source"], where["doc_id"])]
        assert original[where["start"] : where["end"]] == chunk.text
    titles = {d.metadata["source"]: d.title for d in result.dataset.corpus.values()}
    assert titles["guide.md"] == "Setting up"
    assert titles["sub/page.html"] == "Serving"
    assert titles["paper.pdf"] == "A paper"
    assert titles["memo.docx"] == "Memo"
    html = " ".join(d.text for d in result.dataset.corpus.values() if "html" in d.id)
    assert "var x" not in html and "color: red" not in html
    pdf_pages = [d.metadata["pages"] for d in result.dataset.corpus.values() if "pdf" in d.id]
    assert pdf_pages[0] == [1] and pdf_pages[-1] == [2]


def _readable(path: Path, source: str):
    try:
        return read_documents(path, source)
    except Skipped:
        return []


def test_default_chunks_fit_the_models_max_length_and_neighbours_overlap(tmp_path: Path, tokens):
    (tmp_path / "long.txt").write_text(prose(150), "utf-8")
    result = ingest_files(files_under(tmp_path), Chunker(tokens))
    chunks = list(result.dataset.corpus.values())
    assert result.report.token_limit == tokens.max_seq_length == 256
    assert len(chunks) >= 3
    assert all(tokens.count(c.full_text) <= 256 for c in chunks)
    assert max(result.report.token_counts) > 200  # chunks use the room they have
    first, second = chunks[0].metadata, chunks[1].metadata
    assert second["start"] < first["end"]  # 20 tokens of overlap by default


def test_the_corpus_round_trips_through_beir_with_its_provenance(folder: Path, tokens) -> None:
    result = ingest_files(files_under(folder), Chunker(tokens, ChunkSpec(max_tokens=64)))
    out = save_dataset(result.dataset, folder.parent / "corpus", "beir")
    assert sorted(p.name for p in out.iterdir()) == ["corpus.jsonl"]
    loaded = load_dataset(out)
    assert loaded.queries == {} and loaded.qrels == {} and loaded.warnings == []
    assert {d.id: d.metadata for d in loaded.corpus.values()} == {
        d.id: d.metadata for d in result.dataset.corpus.values()
    }


def test_a_bad_chunk_spec_is_refused(tokens) -> None:
    with pytest.raises(InvalidInput) as bad:
        ChunkSpec(max_tokens=8)
    assert bad.value.param == "max_tokens"
    with pytest.raises(InvalidInput) as overlap:
        ChunkSpec(max_tokens=64, overlap_tokens=40)
    assert overlap.value.param == "overlap_tokens"

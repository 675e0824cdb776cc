"""Raw documents (.txt .md .html .pdf .docx, jsonl) to a chunked corpus: read, chunk with the
target model's tokenizer, keep provenance, report. No database: specs in, results out."""

from core.ingest.chunking import Chunker, ChunkSpec
from core.ingest.corpus import IngestResult, files_under, ingest_files
from core.ingest.readers import SUFFIXES, SourceDocument, read_documents
from core.ingest.report import IngestReport, SkippedFile
from core.ingest.tokens import ModelTokens, model_tokens

__all__ = [
    "SUFFIXES",
    "ChunkSpec",
    "Chunker",
    "IngestReport",
    "IngestResult",
    "ModelTokens",
    "SkippedFile",
    "SourceDocument",
    "files_under",
    "ingest_files",
    "model_tokens",
    "read_documents",
]

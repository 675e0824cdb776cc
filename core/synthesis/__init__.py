"""Queries for a chunked corpus: offline generators or an LLM, counted filters, splits by
source document. No database: specs in, results out."""

"""Tuned corpus vectors out of EmbedTune: Parquet files, and pgvector tables."""

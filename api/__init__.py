"""EmbedTune HTTP API (FastAPI). Thin routes over ``core``."""

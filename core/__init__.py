"""EmbedTune domain library: datasets, models, indexing and evaluation. Imports no web or queue code."""

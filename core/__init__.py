"""EmbedTune domain: datasets, models, training, indexing, evaluation and jobs; no web code."""

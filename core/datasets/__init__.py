"""Retrieval datasets: one in-memory model, readers and writers for five formats, checks,
splits and statistics."""

from core.datasets.io import FORMATS, detect_format, load_dataset, save_dataset
from core.datasets.model import Document, Qrels, Query, RetrievalDataset
from core.datasets.split import split_by_query
from core.datasets.stats import DatasetStats, dataset_stats
from core.datasets.validate import validate

__all__ = [
    "FORMATS",
    "DatasetStats",
    "Document",
    "Qrels",
    "Query",
    "RetrievalDataset",
    "dataset_stats",
    "detect_format",
    "load_dataset",
    "save_dataset",
    "split_by_query",
    "validate",
]

"""Evaluation reports: aggregate metrics plus per-query results, saved as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

PRIMARY_METRIC = "ndcg@10"
METRIC_NAMES = ("ndcg", "map", "recall", "precision", "mrr", "hit")


@dataclass(frozen=True)
class QueryResult:
    """One query's outcome, enough to compare two models query by query."""

    metrics: dict[str, float]
    relevant_ranks: dict[str, int | None]  # relevant doc id -> 1-based rank (None: not retrieved)
    top_ids: list[str]
    top_scores: list[float]


@dataclass
class EvalReport:
    model: str
    model_fingerprint: str
    dataset: str
    split: str
    num_queries: int
    num_documents: int
    metrics: dict[str, float]
    per_query: dict[str, QueryResult] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    model_config: dict[str, Any] = field(default_factory=dict)
    primary_metric: str = PRIMARY_METRIC
    truncated: dict[str, int] = field(default_factory=dict)  # texts over max_seq_length, cut
    precision: str = "fp32"  # of the vectors scored (int8 only when asked for)
    runtime: str = "torch"  # what ran the transformer: torch or onnx

    @property
    def primary(self) -> float:
        return self.metrics[self.primary_metric]

    def k_values(self) -> list[int]:
        return sorted({int(name.split("@")[1]) for name in self.metrics})

    def table(self) -> list[list[str]]:
        """Rows ``[k, ndcg, map, recall, precision, mrr, hit]`` formatted to 4 decimals."""
        return [
            [f"@{k}", *(f"{self.metrics[f'{m}@{k}']:.4f}" for m in METRIC_NAMES)]
            for k in self.k_values()
        ]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1), "utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> EvalReport:
        data = json.loads(Path(path).read_text("utf-8"))
        data["per_query"] = {q: QueryResult(**r) for q, r in data["per_query"].items()}
        return cls(**data)

    def run(self) -> dict[str, dict[str, float]]:
        """The saved ranking as a TREC-style run (query id -> doc id -> score)."""
        return {
            qid: dict(zip(r.top_ids, r.top_scores, strict=True))
            for qid, r in self.per_query.items()
        }

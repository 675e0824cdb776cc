"""Train a ``QueryAdapter`` on frozen base embeddings: in-batch + hard-negative contrastive loss
on cached vectors, validation after every epoch, step-level checkpoints for resume."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from core.datasets.model import RetrievalDataset
from core.errors import Cancelled
from core.evaluation.evaluator import EvalSpec, encode_cached, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.training.examples import Triple, training_triples
from core.training.hooks import CancelCheck, Reporter
from core.training.query_adapter import QueryAdapter, VectorEmbedder
from core.training.spec import FinetuneSpec

CHECKPOINT = Path("checkpoints") / "adapter-state.pt"


@dataclass
class AdapterRun:
    adapter: QueryAdapter
    history: list[dict[str, Any]]
    best_metrics: dict[str, float]
    best_step: int | None
    train_seconds: float
    samples_per_second: float
    train_examples: int


@dataclass
class _State:
    """Everything a resumed run needs (saved with ``torch.save``, read with ``weights_only``)."""

    step: int = 0
    best_score: float = -1.0
    best_step: int | None = None
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_weights: dict[str, torch.Tensor] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)


def base_vectors(
    embedder: Embedder, ds: RetrievalDataset, query_ids: list[str], cache: EmbeddingCache | None
) -> dict[str, dict[str, np.ndarray]]:
    """Base-model vectors of the whole corpus and of ``query_ids``, by side and text (cached)."""
    doc_texts = [doc.full_text for doc in ds.corpus.values()]
    query_texts = [ds.queries[q].text for q in query_ids]
    docs, _ = encode_cached(embedder, doc_texts, "document", cache)
    queries, _ = encode_cached(embedder, query_texts, "query", cache)
    return {
        "document": dict(zip(doc_texts, docs, strict=True)),
        "query": dict(zip(query_texts, queries, strict=True)),
    }


def train_adapter(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    base: Embedder,
    output_dir: Path,
    *,
    splits: tuple[str, str | None],
    reporter: Reporter,
    should_cancel: CancelCheck | None,
    resume: bool,
    cache: EmbeddingCache | None = None,
) -> AdapterRun:
    """Fit the adapter on ``splits[0]``; keep the weights that score best on ``splits[1]``."""
    triples = training_triples(ds, splits[0], spec.num_hard_negatives, seed=spec.seed)
    query_ids = sorted({t.query_id for t in triples} | set(ds.qrels.get(splits[1] or "", {})))
    vectors = base_vectors(base, ds, [q for q in query_ids if q in ds.queries], cache)
    data = _Batches(ds, triples, vectors, spec)
    torch.manual_seed(spec.seed)
    adapter = QueryAdapter(data.dim, spec.adapter_hidden_dim)
    job = _Job(adapter, torch.optim.AdamW(adapter.parameters(), lr=spec.adapter_learning_rate))
    job.state = _load(output_dir, job) if resume else _State()
    if job.state.step:
        reporter.on_event(f"resuming from step {job.state.step}")
    scorer = VectorEmbedder(base.model, base.st, "adapter", vectors=vectors, adapter=adapter)

    def validate() -> None:
        if splits[1]:
            _validate(scorer, ds, splits[1], job.state, reporter)

    seconds, seen = _fit(spec, data, job, output_dir, validate, reporter, should_cancel)
    if job.state.best_weights is not None:
        adapter.load_state_dict(job.state.best_weights)
    return AdapterRun(
        adapter=adapter,
        history=job.state.history,
        best_metrics=job.state.best_metrics,
        best_step=job.state.best_step,
        train_seconds=seconds,
        samples_per_second=seen / max(seconds, 1e-9),
        train_examples=len(triples),
    )


@dataclass
class _Job:
    adapter: QueryAdapter
    optimizer: torch.optim.Optimizer
    state: _State = field(default_factory=_State)


def _fit(
    spec: FinetuneSpec,
    data: _Batches,
    job: _Job,
    out: Path,
    validate: Callable[[], None],
    reporter: Reporter,
    should_cancel: CancelCheck | None,
) -> tuple[float, int]:
    """Run the remaining steps; returns training seconds (validation excluded) and samples."""
    state, total = job.state, data.steps_per_epoch * spec.adapter_epochs
    start, seen, eval_seconds = time.perf_counter(), 0, 0.0
    while state.step < total:
        if should_cancel is not None and should_cancel():
            _save(out, job)
            raise Cancelled(f"fine-tune cancelled at step {state.step}")
        loss = _train_step(job.adapter, job.optimizer, data.batch(state.step), spec.loss_scale)
        state.step += 1
        seen += spec.batch_size
        reporter.on_progress("train", state.step, total)
        if state.step % spec.logging_steps == 0 or state.step == total:
            reporter.on_step(state.step, total, loss, spec.adapter_learning_rate)
            state.history.append({"step": state.step, "loss": loss})
        if state.step % data.steps_per_epoch == 0:
            eval_start = time.perf_counter()
            validate()
            eval_seconds += time.perf_counter() - eval_start
            _save(out, job)
    return time.perf_counter() - start - eval_seconds, seen


class _Batches:
    """Row tensors and a seeded per-epoch order, so a step number names its batch."""

    def __init__(
        self,
        ds: RetrievalDataset,
        triples: list[Triple],
        vectors: dict[str, dict[str, np.ndarray]],
        spec: FinetuneSpec,
    ) -> None:
        docs = vectors["document"]
        self.queries = torch.from_numpy(
            np.stack([vectors["query"][ds.queries[t.query_id].text] for t in triples])
        )
        self.positives = torch.from_numpy(
            np.stack([docs[ds.corpus[t.positive_id].full_text] for t in triples])
        )
        width = min(len(t.negative_ids) for t in triples)
        dim = self.positives.shape[1]  # explicit: with no negatives (width 0) -1 is ambiguous
        self.negatives = (
            torch.from_numpy(
                np.stack(
                    [
                        [docs[ds.corpus[d].full_text] for d in t.negative_ids[:width]]
                        for t in triples
                    ]
                )
            )
            .reshape(len(triples), width, dim)
            .to(self.positives.dtype)
        )
        self.doc_ids = [[t.positive_id, *t.negative_ids[:width]] for t in triples]
        self.query_ids = [t.query_id for t in triples]
        self.known = _positives_by_query(triples)
        self.dim = self.queries.shape[1]
        self.size, self.batch_size, self.seed = len(triples), spec.batch_size, spec.seed
        self.steps_per_epoch = -(-self.size // self.batch_size)

    def batch(self, step: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        epoch, index = divmod(step, self.steps_per_epoch)
        order = torch.randperm(
            self.size, generator=torch.Generator().manual_seed(self.seed + epoch)
        )
        rows = order[index * self.batch_size : (index + 1) * self.batch_size]
        docs = torch.cat([self.positives[rows], self.negatives[rows].reshape(-1, self.dim)])
        return self.queries[rows], docs, self._mask(rows.tolist())

    def _mask(self, rows: list[int]) -> torch.Tensor:
        """True where a candidate is a known positive of the row's query, other than its target."""
        columns = [self.doc_ids[r][0] for r in rows] + [
            d for r in rows for d in self.doc_ids[r][1:]
        ]
        mask = torch.zeros(len(rows), len(columns), dtype=torch.bool)
        for i, r in enumerate(rows):
            known = self.known[self.query_ids[r]]
            for j, doc in enumerate(columns):
                mask[i, j] = j != i and doc in known
        return mask


def _positives_by_query(triples: list[Triple]) -> dict[str, set[str]]:
    known: dict[str, set[str]] = {}
    for t in triples:
        known.setdefault(t.query_id, set()).add(t.positive_id)
    return known


def _train_step(
    adapter: QueryAdapter,
    optimizer: torch.optim.Optimizer,
    batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    scale: float,
) -> float:
    queries, docs, mask = batch
    adapter.train()
    scores = scale * F.normalize(adapter(queries), dim=-1) @ F.normalize(docs, dim=-1).T
    loss = F.cross_entropy(scores.masked_fill(mask, float("-inf")), torch.arange(len(queries)))
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _validate(
    scorer: VectorEmbedder, ds: RetrievalDataset, split: str, state: _State, reporter: Reporter
) -> None:
    scorer.adapter.eval()
    metrics = dict(evaluate(ds, scorer, EvalSpec(split=split, count_truncated=False)).metrics)
    reporter.on_eval(state.step, metrics)
    state.history.append({"step": state.step, **{f"eval_{k}": v for k, v in metrics.items()}})
    if metrics["ndcg@10"] > state.best_score:
        state.best_score, state.best_step, state.best_metrics = (
            metrics["ndcg@10"],
            state.step,
            metrics,
        )
        state.best_weights = copy.deepcopy(scorer.adapter.state_dict())


def _save(out: Path, job: _Job) -> None:
    path = out / CHECKPOINT
    path.parent.mkdir(parents=True, exist_ok=True)
    weights = {"adapter": job.adapter.state_dict(), "optimizer": job.optimizer.state_dict()}
    torch.save({**weights, **vars(job.state)}, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)


def _load(out: Path, job: _Job) -> _State:
    path = out / CHECKPOINT
    if not path.is_file():
        return _State()
    payload = torch.load(path, weights_only=True)
    job.adapter.load_state_dict(payload.pop("adapter"))
    job.optimizer.load_state_dict(payload.pop("optimizer"))
    return replace(_State(), **payload)

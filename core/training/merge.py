"""Merging tuned models with their base against forgetting (LM-Cocktail).

A merged model is the weighted average of the weights of models that share one architecture:
the base and one or more models tuned from it. The weights are chosen on the target dataset's
validation split and on a forgetting set (a dataset not trained on): the best validation score
among the weightings whose forgetting-set score stays within ``max_forgetting`` of the base's.
The all-base weighting always qualifies, so a choice always exists.

References: Xiao et al., "LM-Cocktail: Resilient Tuning of Language Models via Model Merging"
(2023), FlagEmbedding ``LM_Cocktail.mix_models``.

Example::

    result = run_merge(base, [tuned], target=(ds, "val"), forgetting=(other, "train"),
                       output_dir=Path("merged"), spec=MergeSpec())
    result.weights  # (base, tuned), e.g. (0.4, 0.6)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.evaluation.evaluator import EvalSpec, encode_cached, evaluate
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder, Progress, Side
from core.safe_values import check_range

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

MERGE_FILE = "merge.json"
DOCUMENT_ROUTE = ".sub_modules.document."
Split = tuple[RetrievalDataset, str]


@dataclass(frozen=True)
class MergeSpec:
    """How the weights are found. ``weights`` (base first, then each tuned model, summing to
    1) skips the search. One tuned model: a grid of its weight, 0 to 1 by ``grid_step``.
    Several: ``trials`` Optuna (TPE) trials over the simplex, the pure models tried first."""

    weights: tuple[float, ...] | None = None
    grid_step: float = 0.1
    trials: int = 24
    max_forgetting: float = 0.005  # allowed drop of the forgetting-set metric under the base's
    metric: str = "ndcg@10"
    seed: int = 0

    def __post_init__(self) -> None:
        check_range(self.grid_step, 0.01, 1, param="grid_step")
        check_range(self.trials, 1, 1000, param="trials")
        check_range(self.max_forgetting, 0, 1, param="max_forgetting")
        weights = self.weights
        if weights is not None and (any(w < 0 for w in weights) or abs(sum(weights) - 1) > 1e-6):
            raise InvalidInput("weights must be >= 0 and sum to 1", param="weights")


@dataclass(frozen=True)
class Candidate:
    """One weighting and how it scored (``forgetting`` None without a forgetting set)."""

    weights: tuple[float, ...]
    target: float
    forgetting: float | None = None


@dataclass
class MergeResult:
    model_dir: Path
    weights: tuple[float, ...]
    chosen: Candidate
    candidates: list[Candidate]
    base: Candidate  # the all-base weighting, the reference for forgetting
    seconds: float
    corpus_encodes: int  # full-corpus encodes the search ran (0 when documents are shared)
    search: str  # "fixed" | "grid" | "optuna"
    metric: str = "ndcg@10"
    members: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "model_dir": str(self.model_dir)}


def merge_state_dicts(
    states: Sequence[Mapping[str, torch.Tensor]], weights: Sequence[float]
) -> dict[str, torch.Tensor]:
    """``sum(w_i * state_i)`` for every floating-point tensor (weights summing to 1); integer
    buffers (position ids) and tensors equal in every state are taken from the first state.
    Keys and shapes must match (one architecture)."""
    if len(states) != len(weights) or len(states) < 2:
        raise InvalidInput("give one weight per model, two models at least", param="weights")
    first = states[0]
    for other in states[1:]:
        if other.keys() != first.keys() or any(other[k].shape != first[k].shape for k in first):
            raise InvalidInput("the models do not share one architecture", param="models")
    merged = {}
    for key, tensor in first.items():
        if not tensor.is_floating_point() or all(s[key].equal(tensor) for s in states[1:]):
            merged[key] = tensor.clone()  # integer buffers; weights no member changed (exact)
            continue
        total = sum(w * s[key].double() for w, s in zip(weights, states, strict=True))
        merged[key] = total.to(tensor.dtype)
    return merged


def counterpart(base: SentenceTransformer, tuned: SentenceTransformer) -> SentenceTransformer:
    """The base model in ``tuned``'s architecture: itself for a full (or merged LoRA) model;
    for a linear query adapter, the base behind an identity adapter (the adapter's start)."""
    from sentence_transformers.base.modules import Dense, Router

    from core.training.query_adapter import QueryAdapter, with_query_adapter

    if tuned.state_dict().keys() == base.state_dict().keys():
        return base
    router = tuned[0]
    if not isinstance(router, Router):
        raise InvalidInput("the models do not share one architecture", param="models")
    dense = [m for m in router.sub_modules["query"] if isinstance(m, Dense)]
    if len(dense) != 1:
        raise InvalidInput(
            "only a linear query adapter merges with its base (adapter_hidden_dim unset)",
            param="models",
        )
    return with_query_adapter(base, QueryAdapter(dense[0].linear.in_features))


def merged_model(
    members: Sequence[SentenceTransformer], weights: Sequence[float]
) -> SentenceTransformer:
    """A copy of the last member with the weighted average of every member's weights."""
    states = [m.state_dict() for m in members]
    model = copy.deepcopy(members[-1])
    model.load_state_dict(merge_state_dicts(states, weights))
    return model


def run_merge(
    base: Embedder,
    tuned: Sequence[Embedder],
    *,
    target: Split,
    forgetting: Split | None,
    output_dir: Path,
    spec: MergeSpec = MergeSpec(),
    cache: EmbeddingCache | None = None,
    on_event: Callable[[str], None] = lambda _: None,
) -> MergeResult:
    """Search the weights, write the merged model (with its card) to ``output_dir``."""
    start = time.perf_counter()
    members = [counterpart(base.st, tuned[0].st), *(t.st for t in tuned)]
    scorer = _Scorer(base, members, target, forgetting, spec.metric, cache)
    if spec.weights is not None:
        if len(spec.weights) != len(members):
            raise InvalidInput(f"give {len(members)} weights (base first)", param="weights")
        grid, search = [tuple(spec.weights), _pure(len(members), 0)], "fixed"
        candidates = [scorer(w) for w in dict.fromkeys(grid)]
    elif len(members) == 2:
        steps = np.round(np.arange(0, 1 + 1e-9, spec.grid_step), 6)
        grid, search = [(float(round(1 - a, 6)), float(a)) for a in steps], "grid"
        candidates = [scorer(w) for w in grid]
    else:
        candidates, search = _optuna(scorer, len(members), spec), "optuna"
    reference = next(c for c in candidates if c.weights == _pure(len(members), 0))
    if spec.weights is not None:
        chosen = candidates[0]
    else:
        chosen = choose(candidates, reference, spec.max_forgetting)
    on_event(f"merge weights {chosen.weights}: {_describe(chosen)}; base {_describe(reference)}")
    model = merged_model(members, chosen.weights)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.save(str(output_dir), create_model_card=False)
    base.config.save(output_dir)
    result = MergeResult(
        model_dir=output_dir,
        weights=chosen.weights,
        chosen=chosen,
        candidates=candidates,
        base=reference,
        seconds=time.perf_counter() - start,
        corpus_encodes=scorer.corpus_encodes,
        search=search,
        metric=spec.metric,
        members=[base.model.ref, *(t.model.ref for t in tuned)],
    )
    write_merge_card(result, spec, target, forgetting)
    return result


def choose(candidates: list[Candidate], reference: Candidate, max_forgetting: float) -> Candidate:
    """The best target score among candidates that forget at most ``max_forgetting``; the
    least forgetting one when none qualifies (the reference always qualifies)."""
    if reference.forgetting is None:
        return max(candidates, key=lambda c: c.target)
    floor = reference.forgetting - max_forgetting - 1e-12
    kept = [c for c in candidates if c.forgetting is not None and c.forgetting >= floor]
    return max(kept, key=lambda c: (c.target, c.forgetting))


def _pure(n: int, i: int) -> tuple[float, ...]:
    return tuple(1.0 if j == i else 0.0 for j in range(n))


def _describe(c: Candidate) -> str:
    text = f"target {c.target:.4f}"
    return text if c.forgetting is None else f"{text}, forgetting set {c.forgetting:.4f}"


def _optuna(scorer: _Scorer, n: int, spec: MergeSpec) -> list[Candidate]:
    """TPE over the simplex (each weight drawn in [0, 1], then normalized); infeasible
    weightings score below every feasible one."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.TPESampler(seed=spec.seed)
    )
    for i in range(n):
        study.enqueue_trial({f"w{j}": float(j == i) for j in range(n)})
    seen: dict[tuple[float, ...], Candidate] = {}

    def objective(trial: optuna.Trial) -> float:
        raw = [trial.suggest_float(f"w{j}", 0.0, 1.0) for j in range(n)]
        total = sum(raw) or 1.0
        weights = tuple(round(r / total, 4) for r in raw) if sum(raw) else _pure(n, 0)
        seen[weights] = seen.get(weights) or scorer(weights)
        found, base = seen[weights], seen.get(_pure(n, 0))
        if base is None or found.forgetting is None or base.forgetting is None:
            return found.target
        ok = found.forgetting >= base.forgetting - spec.max_forgetting
        return found.target if ok else found.target - 1.0

    study.optimize(objective, n_trials=max(spec.trials, n))
    return list(seen.values())


class _Scorer:
    """Scores a weighting on the target split and the forgetting set. When every member
    encodes documents the same way (a query adapter leaves the document route alone), the
    base's document vectors are encoded once (cached) and shared by every candidate."""

    def __init__(
        self,
        base: Embedder,
        members: list[SentenceTransformer],
        target: Split,
        forgetting: Split | None,
        metric: str,
        cache: EmbeddingCache | None,
    ) -> None:
        self.base, self.members, self.metric, self.cache = base, members, metric, cache
        self.splits = [target, *([forgetting] if forgetting else [])]
        self.shared_docs = _same_document_route(members)
        self.corpus_encodes = 0
        self.docs = BaseVectors(base, cache)

    def __call__(self, weights: tuple[float, ...]) -> Candidate:
        model = merged_model(self.members, weights)
        docs = self.docs if self.shared_docs else None
        embedder = SharedDocuments(self.base.model, model, f"merge-{id(model)}", docs=docs)
        scores = [self._score(embedder, ds, split) for ds, split in self.splits]
        return Candidate(weights, scores[0], scores[1] if len(scores) > 1 else None)

    def _score(self, embedder: Embedder, ds: RetrievalDataset, split: str) -> float:
        if not self.shared_docs:
            self.corpus_encodes += 1
        spec = EvalSpec(split=split, count_truncated=False)
        return float(evaluate(ds, embedder, spec).metrics[self.metric])


class BaseVectors:
    """The base model's vectors by side and text, each encoded once (through ``cache``)."""

    def __init__(self, base: Embedder, cache: EmbeddingCache | None) -> None:
        self.base, self.cache = base, cache
        self._seen: dict[str, dict[str, np.ndarray]] = {"query": {}, "document": {}}

    def __call__(self, texts: Sequence[str], side: Side = "document") -> np.ndarray:
        seen = self._seen[side]
        missing = [t for t in dict.fromkeys(texts) if t not in seen]
        if missing:
            vectors, _ = encode_cached(self.base, missing, side, self.cache)
            seen.update(zip(missing, vectors, strict=True))
        if not texts:
            return np.zeros((0, self.base.st.get_embedding_dimension() or 0), np.float32)
        return np.stack([seen[t] for t in texts]).astype(np.float32)


@dataclass
class SharedDocuments(Embedder):
    """A model whose document route is the base's (a query adapter, a merge of adapters):
    documents come from ``docs`` (the base's vectors, encoded once). When its query route is
    the base's modules plus a head (the adapter's Dense and Normalize), queries are the head
    applied to the base's query vectors, the same function without another transformer pass."""

    docs: BaseVectors | None = None

    def __post_init__(self) -> None:
        self.head = query_head(self.st) if self.docs is not None else None

    def encode(
        self, texts: Sequence[str], side: Side, progress: Progress | None = None
    ) -> np.ndarray:
        if self.docs is None or (side == "query" and self.head is None):
            return super().encode(texts, side, progress)
        found = self.docs(list(texts), side)
        if side == "query":
            found = _apply(self.head, found, self.config.normalize)
        if progress:
            progress(len(texts), len(texts))
        return found


def query_head(model: SentenceTransformer) -> list[Any] | None:
    """The modules a Router's query route adds after a copy of its document route, if so."""
    from sentence_transformers.base.modules import Router

    router = model[0] if len(model) else None
    if not isinstance(router, Router):
        return None
    query, document = list(router.sub_modules["query"]), list(router.sub_modules["document"])
    if len(query) <= len(document):
        return None
    for q, d in zip(query, document, strict=False):
        qs, ds = q.state_dict(), d.state_dict()
        if type(q) is not type(d) or qs.keys() != ds.keys():
            return None
        if not all(qs[k].equal(ds[k]) for k in qs):
            return None
    return query[len(document) :]


def _apply(head: Any, vectors: np.ndarray, normalize: bool) -> np.ndarray:
    import torch

    with torch.inference_mode():
        features = {"sentence_embedding": torch.from_numpy(vectors)}
        for module in head:
            features = module(features)
        out = features["sentence_embedding"]
        if normalize:
            out = torch.nn.functional.normalize(out, dim=-1)
    return out.numpy().astype(np.float32)


def _same_document_route(members: list[SentenceTransformer]) -> bool:
    """Whether every member is a Router whose document-side weights equal the first's."""
    states = [m.state_dict() for m in members]
    keys = [k for k in states[0] if DOCUMENT_ROUTE in k]
    if not keys:
        return False
    return all(all(s[k].equal(states[0][k]) for k in keys) for s in states[1:])


def write_merge_card(
    result: MergeResult, spec: MergeSpec, target: Split, forgetting: Split | None
) -> Path:
    """README.md and merge.json: the members, the weights, how they were chosen and scored."""
    out = result.model_dir
    (out / MERGE_FILE).write_text(
        json.dumps({**result.to_dict(), "spec": asdict(spec)}, indent=1) + "\n", "utf-8"
    )
    forget = f"`{forgetting[0].name}` split `{forgetting[1]}`" if forgetting else "none"
    rows = [
        f"| {' / '.join(f'{w:.2f}' for w in c.weights)} | {c.target:.4f} | "
        f"{'–' if c.forgetting is None else f'{c.forgetting:.4f}'} |"
        for c in result.candidates
    ]
    lines = [
        f"# {out.name}",
        "",
        "Merged with EmbedTune (LM-Cocktail): the weighted average of the weights of",
        *(f"- `{m}`: {w:.2f}" for m, w in zip(result.members, result.weights, strict=True)),
        "",
        f"Weights chosen by {result.search} search on `{target[0].name}` split `{target[1]}` "
        f"({result.metric}), keeping the forgetting set ({forget}) within "
        f"{spec.max_forgetting:.4f} of the base. The test split was not read.",
        "",
        f"| weights | {result.metric} `{target[1]}` | {result.metric} forgetting set |",
        "|---|---|---|",
        *rows,
        "",
        f"Search: {result.seconds:.0f} s, {len(result.candidates)} weightings, "
        f"{result.corpus_encodes} corpus encodes.",
        "",
    ]
    path = out / "README.md"
    path.write_text("\n".join(lines), "utf-8")
    return path

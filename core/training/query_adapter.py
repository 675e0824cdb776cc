"""A query-side adapter: a small transform applied to query embeddings only, served inside the
model through a query/document ``Router`` so the corpus index never needs re-encoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from core.models.embedder import Embedder, Progress, Side

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Dense


class QueryAdapter(nn.Module):
    """``x -> W x + b`` (identity at start), or with ``hidden`` set the residual MLP
    ``x -> x + W2 relu(W1 x + b1) + b2`` with ``W2 = 0`` at start; either way training starts
    from the base model."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.dim, self.hidden = dim, hidden
        if hidden is None:
            self.linear = nn.Linear(dim, dim)
            nn.init.eye_(self.linear.weight)
            nn.init.zeros_(self.linear.bias)
        else:
            self.up = nn.Linear(dim, hidden)
            self.down = nn.Linear(hidden, dim)
            nn.init.zeros_(self.down.weight)
            nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.hidden is None:
            return self.linear(x)
        return x + self.down(torch.relu(self.up(x)))

    def to_dense(self) -> list[Dense]:
        """The same function as stock ``Dense`` modules, so a saved model loads without
        ``trust_remote_code``. The residual rides through ReLU as ``relu(x) - relu(-x) = x``."""
        from sentence_transformers.base.modules import Dense

        with torch.no_grad():
            if self.hidden is None:
                w, b = self.linear.weight.clone(), self.linear.bias.clone()
                return [
                    Dense(self.dim, self.dim, activation_function=None, init_weight=w, init_bias=b)
                ]
            eye = torch.eye(self.dim)
            w1 = torch.cat([eye, -eye, self.up.weight])
            b1 = torch.cat([torch.zeros(2 * self.dim), self.up.bias])
            w2 = torch.cat([eye, -eye, self.down.weight], dim=1)
            width = 2 * self.dim + self.hidden
            return [
                Dense(self.dim, width, activation_function=nn.ReLU(), init_weight=w1, init_bias=b1),
                Dense(
                    width,
                    self.dim,
                    activation_function=None,
                    init_weight=w2,
                    init_bias=self.down.bias.clone(),
                ),
            ]


def with_query_adapter(base: SentenceTransformer, adapter: QueryAdapter) -> SentenceTransformer:
    """``base`` with ``adapter`` on its query route; documents take the unchanged base path."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.base.modules import Normalize, Router

    modules = list(base.children())
    query = [*modules, *adapter.to_dense()]
    if any(isinstance(m, Normalize) for m in modules):
        query.append(Normalize())
    router = Router.for_query_document(query_modules=query, document_modules=modules)
    model = SentenceTransformer(modules=[router], device="cpu", prompts=dict(base.prompts))
    model.similarity_fn_name = base.similarity_fn_name
    return model


def save_adapter_model(base: SentenceTransformer, adapter: QueryAdapter, out_dir: Path) -> Path:
    with_query_adapter(base, adapter.cpu()).save(str(out_dir), create_model_card=False)
    return Path(out_dir)


@dataclass
class VectorEmbedder(Embedder):
    """An ``Embedder`` over precomputed base vectors (side -> text -> vector): documents as they
    are, queries through the adapter; the standard evaluator scores it with no transformer pass."""

    vectors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    adapter: QueryAdapter | None = None

    def encode(
        self, texts: Sequence[str], side: Side, progress: Progress | None = None
    ) -> np.ndarray:
        found = torch.from_numpy(np.stack([self.vectors[side][t] for t in texts]))
        if side == "query" and self.adapter is not None:
            with torch.no_grad():
                found = self.adapter(found)
        if self.config.normalize:
            found = torch.nn.functional.normalize(found, dim=-1)
        if progress:
            progress(len(texts), len(texts))
        return found.numpy().astype(np.float32)

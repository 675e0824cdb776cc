"""A cross-encoder ready to rerank: loaded safely from a reranker checkpoint or an encoder."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.models.loading import check_safetensors, fingerprint
from core.models.resolve import ResolvedModel, resolve_model

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder

RERANK_CONFIG = "embedtune_rerank.json"  # the fusion weight chosen on validation, and why


def is_reranker_dir(path: Path) -> bool:
    """Whether ``path`` holds a sequence-classification model (a reranker checkpoint)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    architectures = json.loads(config.read_text("utf-8")).get("architectures") or []
    return any(a.endswith("ForSequenceClassification") for a in architectures)


@dataclass
class Reranker:
    """Scores (query, document) pairs with a ``CrossEncoder``; higher is more relevant."""

    model: ResolvedModel
    cross_encoder: CrossEncoder
    fingerprint: str
    batch_size: int = 32

    @property
    def max_length(self) -> int:
        return int(self.cross_encoder.max_seq_length)

    def score(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        """float32 scores of ``pairs``, in order (the model's activation applied)."""
        if not pairs:
            return np.zeros(0, np.float32)
        order = np.argsort([-len(q) - len(d) for q, d in pairs], kind="stable")
        scores = self.cross_encoder.predict(
            [pairs[i] for i in order],
            batch_size=self.batch_size,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out = np.empty(len(pairs), np.float32)
        out[order] = np.asarray(scores, np.float32).reshape(len(pairs))
        return out

    def fusion_weight(self) -> float | None:
        """The fusion weight its fine-tune chose on validation, if it was trained here."""
        path = self.model.path / RERANK_CONFIG
        if not path.is_file():
            return None
        fusion = json.loads(path.read_text("utf-8")).get("fusion") or {}
        return float(fusion["weight"]) if "weight" in fusion else None


def load_cross_encoder(
    model: ResolvedModel,
    *,
    max_length: int | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
) -> CrossEncoder:
    """A one-label ``CrossEncoder``: a reranker checkpoint as it is, an encoder with a fresh
    head (seed torch first for a reproducible head). Safetensors weights only."""
    from sentence_transformers import CrossEncoder

    check_safetensors(model.path, model.ref)
    return CrossEncoder(
        str(model.path),
        num_labels=1,
        max_length=max_length,
        device=device,
        trust_remote_code=trust_remote_code,
        local_files_only=True,
        model_kwargs={"use_safetensors": True},
    )


def load_reranker(
    ref: str,
    *,
    models_dir: Path | None = None,
    allow_paths: bool = True,
    max_length: int | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    batch_size: int = 32,
) -> Reranker:
    """Resolve ``ref`` as any model reference and load it as a reranker."""
    resolved = resolve_model(ref, models_dir=models_dir, allow_paths=allow_paths)
    if max_length is None:
        max_length = resolved.config.max_seq_length
    encoder = load_cross_encoder(
        resolved, max_length=max_length, device=device, trust_remote_code=trust_remote_code
    )
    return Reranker(resolved, encoder, fingerprint(resolved.path), batch_size)

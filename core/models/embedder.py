"""An embedding model ready for retrieval: the loaded network plus its query/document settings."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from core import metrics
from core.models.config import ModelConfig
from core.models.loading import check_safetensors, fingerprint, load_sentence_transformer
from core.models.multi_vector import MultiVectorEmbedder, is_multi_vector, load_multi_vector
from core.models.resolve import ResolvedModel, resolve_model

if TYPE_CHECKING:
    from pathlib import Path

    from sentence_transformers import SentenceTransformer

Side = Literal["query", "document"]
Progress = Callable[[int, int], None]
CHUNK = 256  # texts between progress reports (and the cancel checks they make)
MAX_BATCH_TOKENS = 16384  # padded tokens per forward pass of a job's encode (see bench/eval.py)
Half = Literal["fp16", "bf16"]
HALF_DTYPES: dict[str, str] = {"fp16": "float16", "bf16": "bfloat16"}  # torch dtype names


@dataclass
class Embedder:
    """Encodes queries and documents the way the model's config says (instructions, length)."""

    model: ResolvedModel
    st: SentenceTransformer
    fingerprint: str
    batch_size: int = 64
    max_batch_tokens: int = MAX_BATCH_TOKENS
    # Runs the forward passes instead of PyTorch when set: ``encode_features(features)``
    # (``core.serving.runtime``: the transformer in ONNX Runtime, fp32 or int8).
    runtime: Any = field(default=None, repr=False, compare=False)
    # of the vectors: fp32, int8 (``runtime``) or fp16/bf16 (autocast on a CUDA GPU, see
    # ``half_unavailable``); other than fp32 they are cached under their own key
    precision: str = "fp32"
    _sides: dict[Side, str] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    def side_fingerprint(self, side: Side) -> str:
        """The fingerprint of the modules that make ``side``'s vectors (``core.models.sides``):
        a query adapter's document side is its base model's. Hashed once per embedder, so a
        network trained in place after the first call keeps its old value."""
        if self._sides is None:
            from core.models.sides import side_fingerprints

            self._sides = side_fingerprints(self.st)
        suffix = "" if self.precision == "fp32" else f"-{self.precision}"
        return self._sides[side] + suffix

    @property
    def max_seq_length(self) -> int:
        return int(self.st.max_seq_length)

    def instruction(self, side: Side) -> str:
        cfg = self.config
        return cfg.query_instruction if side == "query" else cfg.document_instruction

    def count_tokens(self, texts: Sequence[str], side: Side) -> list[int]:
        """Tokens per text before truncation: instruction and special tokens included."""
        prompt = self.instruction(side)
        counts: list[int] = []
        for start in range(0, len(texts), CHUNK):
            chunk = [prompt + t for t in texts[start : start + CHUNK]]
            ids = self.st.tokenizer(chunk, truncation=False, verbose=False)["input_ids"]
            counts.extend(len(i) for i in ids)
        return counts

    def encode(
        self,
        texts: Sequence[str],
        side: Side,
        progress: Progress | None = None,
        *,
        counted: bool = True,
    ) -> np.ndarray:
        """float32 embeddings (L2-normalized when the config says so), in input order.

        Texts are sorted by tokens and encoded in forward passes of at most ``batch_size``
        texts and ``max_batch_tokens`` padded tokens (``token_batches``), as serving forms
        them: many short texts per pass, few long ones, little padding."""
        out = np.empty((len(texts), self.st.get_embedding_dimension() or 0), np.float32)
        lengths = np.minimum(self.count_tokens(texts, side), self.max_seq_length)
        order = np.argsort(-lengths, kind="stable")
        prompt, done, reported = self.instruction(side), 0, 0
        # a model under training is scored without dropout, then left as it was, module by
        # module (a freshly loaded one is a training wrapper around a network in eval mode)
        modes = [(module, module.training) for module in self.st.modules()]
        self.st.eval()
        try:
            for batch in token_batches(lengths[order], self.max_batch_tokens, self.batch_size):
                idx = order[batch]
                features = self.st.preprocess([texts[i] for i in idx], prompt=prompt, task=side)
                out[idx] = (
                    self.runtime.encode_features(features)
                    if self.runtime is not None
                    else self.encode_features(features, side)
                )
                if counted:  # a job's texts, not a probe's
                    metrics.JOB_TEXTS_ENCODED.inc(len(idx))
                done += len(idx)
                if progress and (done - reported >= CHUNK or done == len(texts)):
                    progress(done, len(texts))
                    reported = done
        finally:
            for module, mode in modes:
                module.training = mode
        return out

    def encode_features(self, features: dict[str, Any], side: Side) -> np.ndarray:
        """float32 embeddings of texts that ``st.preprocess`` (prompt and side as task) made
        into ``features``: the forward half of ``encode``, for callers who tokenize apart."""
        import torch
        import torch.nn.functional as F
        from sentence_transformers.util import batch_to_device

        with torch.inference_mode(), self._autocast():
            out = self.st(batch_to_device(features, self.st.device), task=side)
            vectors = out["sentence_embedding"].float()
            if self.config.normalize:
                vectors = F.normalize(vectors, p=2, dim=1)
        return vectors.cpu().numpy()

    def _autocast(self) -> AbstractContextManager[Any]:
        """Matrix products in fp16/bf16 (weights stay fp32) when the precision says so."""
        import torch

        if self.precision not in HALF_DTYPES:
            return nullcontext()
        return torch.autocast(
            self.st.device.type, dtype=getattr(torch, HALF_DTYPES[self.precision])
        )


def half_unavailable(embedder: object, precision: Half) -> str | None:
    """Why ``embedder`` cannot encode at ``precision`` in this process; None when it can:
    a single-vector model on a CUDA GPU (bf16 only where the GPU supports it)."""
    import torch

    if not isinstance(embedder, Embedder):
        return "EmbedTune encodes late-interaction and remote models at fp32 only"
    device = embedder.st.device
    if device.type != "cuda":
        return f"{precision} needs a CUDA GPU and this process encodes on the {device.type}"
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        return f"this GPU ({torch.cuda.get_device_name(device)}) does not support bf16"
    return None


def token_batches(lengths: Sequence[int], max_tokens: int, max_texts: int) -> list[slice]:
    """Consecutive slices of texts sorted by descending ``lengths``: each pass holds at most
    ``max_texts`` texts and, padded to its first (longest) text, ``max_tokens`` tokens (at
    least one text)."""
    batches, start = [], 0
    while start < len(lengths):
        fits = max(1, min(max_texts, max_tokens // max(int(lengths[start]), 1)))
        batches.append(slice(start, min(start + fits, len(lengths))))
        start += fits
    return batches


def wrap_embedder(
    model: ResolvedModel, network: Any, fingerprint: str, batch_size: int = 64
) -> Embedder | MultiVectorEmbedder:
    """The embedder of a loaded network: token vectors for a ``MultiVectorEncoder``."""
    from sentence_transformers import MultiVectorEncoder

    if isinstance(network, MultiVectorEncoder):
        return MultiVectorEmbedder(model, network, fingerprint, batch_size)
    return Embedder(model, network, fingerprint, batch_size)


def load_embedder(
    ref: str,
    *,
    models_dir: Path | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    batch_size: int = 64,
    allow_paths: bool = True,
    **overrides: object,
) -> Embedder | MultiVectorEmbedder:
    """Resolve ``ref``, load it safely and apply config overrides (e.g. ``max_seq_length``);
    ``allow_paths=False`` for references that came from a client. A late-interaction model
    loads as a ``MultiVectorEmbedder`` (token vectors)."""
    resolved = resolve_model(ref, models_dir=models_dir, allow_paths=allow_paths)
    if any(v is not None for v in overrides.values()):
        resolved = ResolvedModel(
            resolved.ref,
            resolved.source,
            resolved.path,
            resolved.config.with_overrides(**overrides),
        )
    if is_multi_vector(resolved.path):
        check_safetensors(resolved.path, resolved.ref)
        return load_multi_vector(
            resolved, fingerprint(resolved.path), device=device, batch_size=batch_size
        )
    st = load_sentence_transformer(resolved, device=device, trust_remote_code=trust_remote_code)
    return Embedder(resolved, st, fingerprint(resolved.path), batch_size=batch_size)

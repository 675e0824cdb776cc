"""What the serving engine may do: batch shape, request limits and memory budgets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from core.models.embedder import Half


@dataclass(frozen=True)
class ServeSpec:
    """Limits of one serving engine.

    A worker step takes queued texts first come first served until ``max_batch_tokens`` real
    tokens (at least one text), then encodes them sorted by tokens in forward passes of at most
    ``max_batch_size`` texts (16 with ONNX Runtime, see ``core.serving.onnx``), answering each
    request as soon as its last text is encoded. Before a step an idle worker waits for the
    queue to refill to the size of its last forward pass (a single client waits for nobody),
    for at most ``batch_wait_ms`` or a fifth of that pass's duration, whichever is longer.
    Texts are tokenized before they queue, on ``tokenizer_threads`` shared by all models; a text
    over ``max_input_chars`` is refused (or cut, with truncation) before any tokenizer sees it.
    """

    max_batch_size: int = 32
    max_batch_tokens: int = 8192
    batch_wait_ms: float = 2.0
    max_inputs: int = 2048  # texts in one request (OpenAI's limit)
    max_input_chars: int = 32768  # characters per text (~4 a token: 8192 tokens); longer: 413
    tokenizer_threads: int = 4  # requests tokenized at once, beside the models' encode threads
    max_queue: int = 16384  # texts waiting for one model before requests get 429
    model_memory_bytes: int = 4 << 30  # weights of loaded models, least recently used evicted
    index_memory_bytes: int = 4 << 30  # loaded indexes and their document texts
    onnx_dir: Path | None = None  # where CPU models' ONNX exports live; None: PyTorch only
    truncate: bool = True  # over-long inputs of requests that do not say: cut (True) or 413
    truncate_models: Mapping[str, bool] = field(default_factory=dict)  # per model reference
    # Model references served with their int8 transformer (ONNX Runtime): each only once a
    # quantize job measured its loss within the limits (``core.serving.quantize``).
    int8_models: frozenset[str] = frozenset()
    # Model references served with fp16/bf16 matrix products on a CUDA GPU; on the CPU (or
    # bf16 on a GPU without it) at fp32, with a warning in the log.
    half_models: Mapping[str, Half] = field(default_factory=dict)

    def truncates(self, ref: str) -> bool:
        """Whether a request for model ``ref`` that sends no ``truncate`` gets truncation."""
        return self.truncate_models.get(ref, self.truncate)


@dataclass(frozen=True)
class ModelKey:
    """A model as served: its reference plus encoding settings that override its config, and
    whether it embeds or reranks (a cross-encoder is loaded apart from an embedder)."""

    ref: str
    max_seq_length: int | None = None
    query_instruction: str | None = None
    document_instruction: str | None = None
    task: Literal["embed", "rerank"] = "embed"

    @property
    def overrides(self) -> dict[str, object]:
        return {
            "max_seq_length": self.max_seq_length,
            "query_instruction": self.query_instruction,
            "document_instruction": self.document_instruction,
        }


TRUNCATE_HINT = (
    'shorten it or send the request field "truncate": true to cut it '
    "(openai client: extra_body={'truncate': True})"
)
"""How a 413 for an over-long input says what changes it."""

"""Fingerprints of the modules that produce one side's vectors (queries or documents).

The embedding cache keys vectors by what produces them, not by the model directory: a
query-side adapter (``Router`` with a query route of base modules plus ``Dense`` layers and a
document route of the base modules alone) has the base model's document fingerprint, so its
corpus vectors are the base model's and are encoded once. The hash covers each module's type,
its settings (the max length aside: the cache key holds it), its tensors and, for a
transformer, the tokenizer and the network's architecture; the same modules saved in another
layout (a plain model, a ``Router`` route) hash the same.
"""

from __future__ import annotations

import hashlib
import json
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer
    from torch import nn

Side = Literal["query", "document"]
VOLATILE_KEYS = ("max_seq_length", "transformers_version", "_name_or_path", "dtype", "torch_dtype")


def side_fingerprints(st: SentenceTransformer) -> dict[Side, str]:
    """The fingerprint of each side's module pipeline (equal for a model without a router)."""
    routes = route_modules(st)
    memo: dict[int, str] = {}
    return {
        side: _digest([memo.setdefault(id(m), module_digest(m)) for m in modules])
        for side, modules in routes.items()
    }


def route_modules(st: SentenceTransformer) -> dict[Side, list[nn.Module]]:
    """The modules each side runs through, in order: a leading ``Router`` expanded to its
    query and document routes, the modules after it shared by both."""
    from sentence_transformers.base.modules import Router

    modules = list(st)
    if not modules or not isinstance(modules[0], Router):
        return {"query": modules, "document": modules}
    router, rest = modules[0], modules[1:]
    return {
        side: [*router.sub_modules[router._resolve_route(task=side)], *rest]
        for side in ("query", "document")
    }


def module_digest(module: nn.Module) -> str:
    """A content hash of one module: type, settings, tensors (and tokenizer, architecture)."""
    digest = hashlib.sha256(type(module).__name__.encode())
    config = getattr(module, "get_config_dict", dict)()
    digest.update(_canonical(_without_volatile(config)))
    tokenizer = getattr(module, "tokenizer", None)
    if tokenizer is not None:
        digest.update(_tokenizer_bytes(tokenizer))
    network = getattr(module, "auto_model", None)
    if network is not None:
        digest.update(_canonical(_without_volatile(network.config.to_dict())))
    for name, tensor in sorted(module.state_dict().items()):
        data = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{data.dtype}:{tuple(data.shape)}".encode())
        digest.update(data.view(-1).view(dtype=_byte_dtype()).numpy().tobytes())
    return digest.hexdigest()


def _tokenizer_bytes(tokenizer: Any) -> bytes:
    """What tokenization depends on: the fast tokenizer's pipeline (without the truncation and
    padding that callers set), else the vocabulary."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        pipeline = json.loads(backend.to_str())
        pipeline.pop("truncation", None)
        pipeline.pop("padding", None)
        return _canonical(pipeline)
    return _canonical(tokenizer.get_vocab())


def _without_volatile(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in VOLATILE_KEYS}


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, default=str, ensure_ascii=False).encode()


def _digest(parts: list[str]) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


def _byte_dtype():  # -> torch.dtype
    import torch

    return torch.uint8

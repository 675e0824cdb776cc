"""A loaded reranker as the engine serves it: (query, document) pairs in, one score per pair.

It has the shape of ``ServedModel`` that the ``Batcher`` drives (tokenize on the shared pool,
pad and forward on the model's thread, rows of ``dim`` floats out), so concurrent rerank
requests for one model share forward passes exactly as embedding requests do. On the CPU the
sequence-classification network runs in ONNX Runtime when its export reproduces PyTorch's
scores on a probe (checked at load, to 1e-4), else in PyTorch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.errors import TooLarge
from core.reranking.reranker import Reranker
from core.serving import tokens
from core.serving.onnx import CALL_SIZE, cpu_session, export_network
from core.serving.spec import TRUNCATE_HINT, ModelKey, ServeSpec
from core.serving.tokens import Rows, Tokens

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("embedtune.serving")
Pair = tuple[str, str]
PROBE: list[Pair] = [("a probe query", "a short document"), ("q", "a longer document text here")]
TOLERANCE = 1e-4


@dataclass(frozen=True)
class ServedReranker:
    key: ModelKey
    reranker: Reranker
    nbytes: int
    onnx: onnxruntime.InferenceSession | None

    @classmethod
    def wrap(cls, key: ModelKey, reranker: Reranker, spec: ServeSpec) -> ServedReranker:
        ce = reranker.cross_encoder
        tensors = [*ce.parameters(), *ce.buffers()]
        nbytes = sum(t.numel() * t.element_size() for t in tensors)
        onnx = None
        if spec.onnx_dir is not None and ce.device.type == "cpu":
            onnx = _onnx_session(reranker, spec.onnx_dir)
        return cls(key, reranker, nbytes * (2 if onnx else 1), onnx)

    @property
    def call_size(self) -> int:
        return min(CALL_SIZE, self.reranker.batch_size) if self.onnx else self.reranker.batch_size

    @property
    def dim(self) -> int:
        return 1

    @property
    def path(self) -> Path:
        return self.reranker.model.path

    @property
    def max_tokens(self) -> int:
        return self.reranker.max_length

    def tokenize(self, pairs: list[Pair], side: str, truncate: bool) -> Tokens:
        """Token rows of the pairs; ``TooLarge`` for a pair over the maximum unless ``truncate``."""
        prepared = tokens.tokenize(self.reranker.cross_encoder, pairs, "", side)
        if not truncate:
            limit = self.max_tokens
            for i, n in enumerate(prepared.lengths):
                if n >= limit and self._untruncated(pairs[i]) > limit:
                    raise TooLarge(
                        f"document {i} with the query has more than the {limit} tokens the "
                        f"model takes; {TRUNCATE_HINT}",
                        code="input_too_long",
                        param=f"documents[{i}]",
                    )
        return prepared

    def encode(self, rows: list[Rows], shared: dict[str, Any], side: str) -> np.ndarray:
        """Scores (the model's activation applied) as a column, one row per pair."""
        import torch

        ce = self.reranker.cross_encoder
        features = tokens.collate(ce, rows, shared)
        with torch.inference_mode():
            if self.onnx is not None:
                logits = torch.from_numpy(self.onnx.run(None, _feed(self.onnx, features))[0])
            else:
                logits = ce(features)["scores"].float()
            scores = ce.activation_fn(logits) if ce.activation_fn is not None else logits
        return scores.reshape(len(rows), 1).cpu().numpy().astype(np.float32)

    def _untruncated(self, pair: Pair) -> int:
        tokenizer = self.reranker.cross_encoder.tokenizer
        return len(tokenizer(*pair, truncation=False, verbose=False)["input_ids"])


def _feed(session: onnxruntime.InferenceSession, features: dict[str, Any]) -> dict[str, Any]:
    names = [i.name for i in session.get_inputs()]
    return {n: features[n].cpu().numpy().astype(np.int64) for n in names}


def _onnx_session(reranker: Reranker, cache_dir: Path) -> onnxruntime.InferenceSession | None:
    """The exported network when it reproduces PyTorch's scores on a probe; else None."""
    import torch

    path = cache_dir / f"rerank-{reranker.fingerprint}.onnx"
    try:
        ce = reranker.cross_encoder
        features = ce.preprocess(PROBE)
        if not path.is_file():
            export_network(ce[0].model, features, "logits", "logits", path)
        session = cpu_session(path)
        with torch.inference_mode():
            expected = ce(dict(features))["scores"].float().numpy()
        got = session.run(None, _feed(session, features))[0]
        if not np.allclose(got, expected, atol=TOLERANCE):
            log.info("serving %s with PyTorch: ONNX scores differ", reranker.model.ref)
            return None
    except Exception:  # an architecture the exporter cannot trace: PyTorch still serves it
        log.exception(
            "ONNX export of reranker %s failed; serving it with PyTorch", reranker.model.ref
        )
        return None
    return session

"""ONNX Runtime for the transformer of a served model on the CPU.

PyTorch's eager mode spends most of a small forward pass dispatching operators: one short
query through all-MiniLM-L6-v2 takes ~16 ms here, against ~5 ms in ONNX Runtime, with the same
vectors (cosine > 0.99999). Only the transformer runs in ONNX Runtime; pooling, dense layers and
normalization stay the model's own sentence-transformers modules, so every model whose pipeline
is ``Transformer`` then those modules is served exactly as ``SentenceTransformer.encode`` would.
Other pipelines (a query-side adapter's ``Router``, prompt-excluding pooling, ...) keep PyTorch.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from core.models.embedder import Embedder, Side

if TYPE_CHECKING:
    import onnxruntime

log = logging.getLogger("embedtune.serving")
OPSET = 17
# Texts per ONNX Runtime call. Calls cost little here, padding a lot: a step of 32 short queries
# (SciFact, all-MiniLM-L6-v2, 2 cores) ran at 144 texts/s as one length-sorted call of 32 and
# at 185 as calls of 16 or 8.
CALL_SIZE = 16


class OnnxEncoder:
    """Encodes texts like ``Embedder.encode``, with the transformer in ONNX Runtime.

    Example:
        encoder = OnnxEncoder.build(embedder, Path("var/cache/onnx"))  # None: keep PyTorch
        vectors = encoder.encode(["what is a cell?"], "query")
    """

    def __init__(
        self, embedder: Embedder, session: onnxruntime.InferenceSession, batch_size: int
    ) -> None:
        self.embedder, self.session, self.batch_size = embedder, session, batch_size
        self.inputs = [i.name for i in session.get_inputs()]

    @classmethod
    def build(cls, embedder: Embedder, cache_dir: Path, batch_size: int) -> OnnxEncoder | None:
        """The encoder, exporting the transformer once per model version into ``cache_dir``;
        ``None`` (and a log line) when the pipeline is not one it reproduces exactly."""
        if reason := _unsupported(embedder):
            log.info("serving %s with PyTorch: %s", embedder.model.ref, reason)
            return None
        path = cache_dir / f"{embedder.fingerprint}.onnx"
        try:
            if not path.is_file():
                _export(embedder, path)
            session = cpu_session(path)
        except Exception:  # an architecture the exporter cannot trace: PyTorch still serves it
            log.exception("ONNX export of %s failed; serving it with PyTorch", embedder.model.ref)
            return None
        return cls(embedder, session, min(batch_size, CALL_SIZE))

    def encode(self, texts: list[str], side: Side) -> np.ndarray:
        """float32 embeddings in input order; length-sorted batches keep padding small."""
        st, prompt = self.embedder.st, self.embedder.instruction(side)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), st.get_embedding_dimension() or 0), np.float32)
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            features = st.preprocess([texts[i] for i in idx], prompt=prompt, task=side)
            out[idx] = self.encode_features(features)
        return out

    def encode_features(self, features: dict[str, Any]) -> np.ndarray:
        """float32 embeddings of texts that ``st.preprocess`` made into ``features``."""
        import torch
        import torch.nn.functional as F

        feed = {name: features[name].numpy().astype(np.int64) for name in self.inputs}
        with torch.inference_mode():
            hidden = torch.from_numpy(self.session.run(None, feed)[0])
            features = {**features, "token_embeddings": hidden}
            for module in list(self.embedder.st)[1:]:
                features = module(features)
            vectors = features["sentence_embedding"].float()
            if self.embedder.config.normalize:
                vectors = F.normalize(vectors, dim=-1)
        return vectors.numpy()


def _unsupported(embedder: Embedder) -> str | None:
    """Why the model's pipeline cannot run as ONNX transformer + its own modules, if it can't."""
    from sentence_transformers.sentence_transformer.modules import (
        Dense,
        Normalize,
        Pooling,
        Transformer,
    )

    modules = list(embedder.st)
    first = modules[0] if modules else None
    if not isinstance(first, Transformer):
        return f"its first module is {type(first).__name__}, not a Transformer"
    if first.module_output_name != "token_embeddings" or first.query_expansion is not None:
        return "its transformer is not a plain text encoder"
    if first.query_length is not None or first.document_length is not None:
        return "it has per-side maximum lengths"
    if getattr(first.auto_model.config, "output_hidden_states", False):
        return "its pooling reads hidden states of every layer"
    for module in modules[1:]:
        if not isinstance(module, Pooling | Dense | Normalize):
            return f"it has a {type(module).__name__} module"
        if isinstance(module, Pooling) and not module.include_prompt:
            return "its pooling leaves the instruction out"
    return None


def _export(embedder: Embedder, path: Path) -> None:
    """Export the transformer (its last hidden state) with dynamic batch and sequence axes."""
    transformer = embedder.st[0]
    sample = transformer.preprocess(["an example", "a second, longer example text"])
    export_network(transformer.auto_model, sample, "last_hidden_state", "token_embeddings", path)


def export_network(
    network: Any, sample: dict[str, Any], attribute: str, output: str, path: Path
) -> None:
    """Export ``network`` (a transformers model) to ``path`` atomically, with dynamic batch and
    sequence axes: its inputs are the token tensors of ``sample``, its one output the
    ``attribute`` of the model's output (``last_hidden_state``, ``logits``), named ``output``."""
    import torch

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in sample]

    class Picked(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return getattr(self.model(**dict(zip(names, inputs, strict=True))), attribute)

    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes[output] = {0: "batch", 1: "tokens"} if attribute == "last_hidden_state" else {0: "batch"}
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=path.parent)
    os.close(fd)
    try:
        # The tracer warns about branches on shapes (padding, causal masks); the tests check
        # the exported graph against PyTorch with and without padding.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Picked(network).eval(),
                tuple(sample[n] for n in names),
                tmp,
                input_names=names,
                output_names=[output],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def cpu_session(path: Path) -> onnxruntime.InferenceSession:
    """An ONNX Runtime session on the CPU with as many threads as torch uses."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _threads() -> int:
    import torch

    return torch.get_num_threads()

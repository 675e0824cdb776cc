"""ONNX Runtime for the encodes of jobs on the CPU: the export and fallbacks serving uses.

``with_runtime`` gives an embedder whose forward passes run in ONNX Runtime (the transformer
only; pooling, dense layers and normalization stay the model's, as in ``core.serving.onnx``):
at ``fp32`` only where a probe measured it faster than PyTorch on this machine (measured once
per model, remembered in ``<onnx_dir>/<fingerprint>.speed.json``); at ``int8`` always, its
vectors cached under their own key. Models the exporter cannot reproduce keep PyTorch.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

from core.models.embedder import Embedder
from core.serving.onnx import CALL_SIZE, OnnxEncoder, cpu_session
from core.serving.quantize import check_int8, export_int8, int8_path, load_quality

log = logging.getLogger("embedtune.runtime")
Precision = Literal["fp32", "int8"]
PROBE_WORDS = [
    "cells",
    "proteins",
    "expression",
    "patients",
    "clinical",
    "study",
    "results",
    "receptor",
    "activity",
    "gene",
    "model",
    "treatment",
    "risk",
    "increased",
    "associated",
    "analysis",
    "response",
    "human",
    "effect",
    "levels",
]
PROBE_LENGTHS = (8, 16, 24, 32, 48, 64, 96, 128, 160, 200, 256)  # words per probe text
PROBE_TEXTS = 4  # texts of each length
FASTER_BY = 1.05  # ONNX Runtime is used at fp32 when at least this much faster


@dataclass(frozen=True)
class Speed:
    torch_seconds: float
    onnx_seconds: float

    @property
    def onnx_faster(self) -> bool:
        return self.torch_seconds >= FASTER_BY * self.onnx_seconds


def with_runtime(embedder: Embedder, onnx_dir: Path, precision: Precision = "fp32") -> Embedder:
    """``embedder`` with its transformer in ONNX Runtime where that applies (see the module
    docstring); ``embedder`` itself when PyTorch stays (a GPU, an unsupported pipeline, or
    fp32 measured no faster). ``int8`` on a model that cannot be exported raises ValueError."""
    if embedder.st.device.type != "cpu":
        return embedder
    fp32 = OnnxEncoder.build(embedder, onnx_dir, embedder.batch_size)
    if fp32 is None:
        if precision == "int8":
            raise ValueError(f"model '{embedder.model.ref}' cannot run in ONNX Runtime")
        return embedder
    if precision == "int8":
        path = export_int8(
            onnx_dir / f"{embedder.fingerprint}.onnx", int8_path(onnx_dir, embedder.fingerprint)
        )
        encoder = OnnxEncoder(embedder, cpu_session(path), embedder.batch_size)
        return replace(embedder, runtime=encoder, precision="int8")
    speed = measured_speed(embedder, fp32, onnx_dir)
    if not speed.onnx_faster:
        return embedder
    return replace(embedder, runtime=fp32)


def int8_encoder(embedder: Embedder, onnx_dir: Path, batch_size: int, ref: str) -> OnnxEncoder:
    """The int8 encoder a model is served with once opted in; ``InvalidInput`` (with the
    measured figures) for a model not measured or measured past the limits."""
    check_int8(load_quality(onnx_dir, embedder.fingerprint), ref)
    int8 = with_runtime(embedder, onnx_dir, "int8")
    return OnnxEncoder(embedder, int8.runtime.session, min(batch_size, CALL_SIZE))


def measured_speed(embedder: Embedder, encoder: OnnxEncoder, onnx_dir: Path) -> Speed:
    """PyTorch and ONNX Runtime seconds on the same probe texts and passes, measured once
    per model on this machine."""
    path = onnx_dir / f"{embedder.fingerprint}.speed.json"
    if path.is_file():
        return Speed(**json.loads(path.read_text("utf-8")))
    texts = probe_texts()
    onnx = replace(embedder, runtime=encoder)
    for candidate in (embedder, onnx):  # warm-up: first calls allocate
        candidate.encode(texts[:8], "document", counted=False)
    rounds = [(_seconds(embedder, texts), _seconds(onnx, texts)) for _ in range(2)]
    speed = Speed(min(t for t, _ in rounds), min(o for _, o in rounds))  # the least disturbed
    log.info(
        "%s: PyTorch %.2fs, ONNX Runtime %.2fs on the probe",
        embedder.model.ref,
        speed.torch_seconds,
        speed.onnx_seconds,
    )
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(
        json.dumps({"torch_seconds": speed.torch_seconds, "onnx_seconds": speed.onnx_seconds})
    )
    os.replace(tmp, path)
    return speed


def probe_texts() -> list[str]:
    """Texts of many lengths, as a corpus and its queries have (fixed: no dataset needed)."""
    words = PROBE_WORDS
    return [
        " ".join(words[(i + k) % len(words)] for i in range(n))
        for n in PROBE_LENGTHS
        for k in range(PROBE_TEXTS)
    ]


def _seconds(embedder: Embedder, texts: list[str]) -> float:
    start = time.perf_counter()
    embedder.encode(texts, "document", counted=False)
    return time.perf_counter() - start

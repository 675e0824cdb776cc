"""int8 (ONNX Runtime dynamic quantization) of a model's transformer, and what it costs.

``quantize_dynamic`` stores the weights of the exported transformer's matrix products as int8
(one scale per output channel) and quantizes activations per call; the issue measured 1.76x
the fp32 throughput on all-MiniLM-L6-v2 with a mean cosine of 0.989 to the fp32 vectors. Good
enough to mine candidates and for a served model whose owner opts in; never what an
evaluation reports. ``measure_int8`` gives the
figures a model is judged by (cosine to fp32 on a corpus sample, nDCG@10 change on a judged
split); they are stored beside the export (``<onnx_dir>/<fingerprint>.int8.json``) and
``check_int8`` refuses a model whose loss exceeds the thresholds.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from core.errors import InvalidInput
from core.models.embedder import Embedder

if TYPE_CHECKING:
    from core.datasets.model import RetrievalDataset

SAMPLE = 512  # corpus texts whose int8 and fp32 vectors are compared


@dataclass(frozen=True)
class Int8Quality:
    """How far a model's int8 vectors are from its fp32 ones."""

    model_fingerprint: str
    dataset: str
    split: str
    sample: int  # corpus texts compared
    mean_cosine: float
    min_cosine: float
    ndcg_at_10_fp32: float
    ndcg_at_10_int8: float
    accepted: bool  # within the thresholds it was measured against
    max_ndcg_drop: float  # the thresholds (nDCG@10 points, x100)
    min_mean_cosine: float

    @property
    def ndcg_change(self) -> float:
        """int8 minus fp32 nDCG@10, in points (x100)."""
        return 100 * (self.ndcg_at_10_int8 - self.ndcg_at_10_fp32)

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "ndcg_change": self.ndcg_change}

    def describe(self) -> str:
        return (
            f"int8 vs fp32 on {self.dataset} [{self.split}]: mean cosine {self.mean_cosine:.4f}, "
            f"min {self.min_cosine:.4f} ({self.sample} documents), nDCG@10 "
            f"{self.ndcg_at_10_fp32:.4f} -> {self.ndcg_at_10_int8:.4f} "
            f"({self.ndcg_change:+.2f} points)"
        )


def int8_path(onnx_dir: Path, fingerprint: str) -> Path:
    return onnx_dir / f"{fingerprint}.int8.onnx"


def quality_path(onnx_dir: Path, fingerprint: str) -> Path:
    return onnx_dir / f"{fingerprint}.int8.json"


def export_int8(fp32_path: Path, out: Path) -> Path:
    """``out``: the fp32 ONNX transformer at ``fp32_path`` with int8 weights (atomic)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if out.is_file():
        return out
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        # per-channel weight scales: on all-MiniLM-L6-v2 (96 SciFact abstracts) the mean cosine
        # to fp32 was 0.9946 (min 0.9912), against 0.934 (min 0.898) with one scale a tensor
        quantize_dynamic(str(fp32_path), str(tmp), weight_type=QuantType.QInt8, per_channel=True)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def load_quality(onnx_dir: Path, fingerprint: str) -> Int8Quality | None:
    path = quality_path(onnx_dir, fingerprint)
    if not path.is_file():
        return None
    data = json.loads(path.read_text("utf-8"))
    data.pop("ndcg_change", None)
    return Int8Quality(**data)


def save_quality(onnx_dir: Path, quality: Int8Quality) -> Path:
    path = quality_path(onnx_dir, quality.model_fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(quality.to_dict(), indent=1), "utf-8")
    os.replace(tmp, path)
    return path


def check_int8(quality: Int8Quality | None, ref: str) -> None:
    """Refuse int8 for a model never measured, or measured past the thresholds."""
    if quality is None:
        raise InvalidInput(
            f"model '{ref[:80]}' has no int8 measurement: run a quantize job first",
            code="int8_not_measured",
            param="precision",
        )
    if not quality.accepted:
        raise InvalidInput(
            f"int8 refused for '{ref[:80]}': {quality.describe()}; the limits are a drop of "
            f"{quality.max_ndcg_drop} nDCG@10 points and a mean cosine of "
            f"{quality.min_mean_cosine}",
            code="int8_too_lossy",
            param="precision",
        )


@dataclass(frozen=True)
class Thresholds:
    max_ndcg_drop: float = 1.0  # nDCG@10 points (x100) int8 may lose on the judged split
    min_mean_cosine: float = 0.98


def measure_int8(
    ds: RetrievalDataset,
    fp32: Embedder,
    int8: Embedder,
    split: str,
    thresholds: Thresholds = Thresholds(),
    *,
    evaluate_fp32=None,  # (dataset, embedder, split) -> nDCG@10; default: core evaluation
    seed: int = 0,
) -> Int8Quality:
    """Cosines of int8 to fp32 vectors on a seeded corpus sample, and nDCG@10 of each on
    ``split`` (``int8`` is ``fp32`` with an int8 transformer, see ``core.serving.runtime``)."""
    from core.evaluation.evaluator import EvalSpec, evaluate

    texts = [doc.full_text for doc in ds.corpus.values()]
    sample = random.Random(seed).sample(texts, min(SAMPLE, len(texts)))
    a, b = fp32.encode(sample, "document"), int8.encode(sample, "document")
    cosines = np.sum(_unit(a) * _unit(b), axis=1)
    spec = EvalSpec(split=split, count_truncated=False)
    score = evaluate_fp32 or (lambda d, e, s: evaluate(d, e, spec).metrics["ndcg@10"])
    before = float(score(ds, fp32, split))
    after = float(evaluate(ds, int8, spec).metrics["ndcg@10"])
    mean = float(cosines.mean())
    accepted = 100 * (before - after) <= thresholds.max_ndcg_drop and (
        mean >= thresholds.min_mean_cosine
    )
    return Int8Quality(
        model_fingerprint=fp32.fingerprint,
        dataset=ds.name,
        split=split,
        sample=len(sample),
        mean_cosine=mean,
        min_cosine=float(cosines.min()),
        ndcg_at_10_fp32=before,
        ndcg_at_10_int8=after,
        accepted=accepted,
        max_ndcg_drop=thresholds.max_ndcg_drop,
        min_mean_cosine=thresholds.min_mean_cosine,
    )


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

"""Serving through ONNX Runtime gives the vectors PyTorch gives, or is not used at all."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.models.embedder import Embedder, load_embedder
from core.serving.onnx import OnnxEncoder

TEXTS = [f"query number {i} about topic {i % 4}" + " and more" * (i % 5) for i in range(11)]


def instructed(model_dir: Path) -> Embedder:
    return load_embedder(
        str(model_dir), query_instruction="query: ", document_instruction="passage: "
    )


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_onnx_matches_pytorch_on_both_sides(tiny_model_dir: Path, tmp_path: Path) -> None:
    embedder = instructed(tiny_model_dir)
    encoder = OnnxEncoder.build(embedder, tmp_path, batch_size=4)
    assert encoder is not None
    for side in ("query", "document"):
        ours, reference = encoder.encode(TEXTS, side), embedder.encode(TEXTS, side)
        assert ours.dtype == np.float32 and ours.shape == reference.shape
        assert cosines(ours, reference).min() >= 0.99999
        np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
        alone = encoder.encode(TEXTS[:1], side)  # no padding at all
        assert cosines(alone, reference[:1]).min() >= 0.99999
    query, document = encoder.encode(TEXTS[:3], "query"), encoder.encode(TEXTS[:3], "document")
    assert cosines(query, document).max() < 0.9999  # the instructions are part of the input


def test_the_export_is_made_once_per_model_version(tiny_model_dir: Path, tmp_path: Path) -> None:
    embedder = instructed(tiny_model_dir)
    assert OnnxEncoder.build(embedder, tmp_path, batch_size=4) is not None
    exported = tmp_path / f"{embedder.fingerprint}.onnx"
    stamp = exported.stat().st_mtime_ns
    assert OnnxEncoder.build(embedder, tmp_path, batch_size=4) is not None
    assert exported.stat().st_mtime_ns == stamp and len(list(tmp_path.iterdir())) == 1


def test_pipelines_it_cannot_reproduce_keep_pytorch(tiny_model_dir: Path, tmp_path: Path) -> None:
    embedder = load_embedder(str(tiny_model_dir))
    embedder.st[1].include_prompt = False  # pooling that leaves the instruction out
    assert OnnxEncoder.build(embedder, tmp_path, batch_size=4) is None
    assert not list(tmp_path.iterdir())

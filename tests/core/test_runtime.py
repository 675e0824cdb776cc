"""Job encodes in ONNX Runtime: the same vectors as PyTorch at fp32, int8 under its own cache
key, the speed measured once per model, and int8 served only once measured within limits."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from core.errors import InvalidInput
from core.models.embedder import load_embedder
from core.serving.onnx import OnnxEncoder
from core.serving.quantize import Int8Quality, save_quality
from core.serving.runtime import int8_encoder, with_runtime
from tests.conftest import sample_texts

TEXTS = [*sample_texts(30)[:30], "a", "what is a cell?"]


def test_onnx_job_encodes_equal_pytorch(tiny_model_dir: Path, tmp_path: Path) -> None:
    torch_side = load_embedder(str(tiny_model_dir))
    onnx = replace(torch_side, runtime=OnnxEncoder.build(torch_side, tmp_path, 64))
    assert onnx.runtime is not None
    for side in ("query", "document"):
        np.testing.assert_allclose(
            onnx.encode(TEXTS, side), torch_side.encode(TEXTS, side), atol=1e-5
        )
    assert onnx.side_fingerprint("document") == torch_side.side_fingerprint("document")


def test_the_speed_is_measured_once_and_remembered(tiny_model_dir: Path, tmp_path: Path) -> None:
    embedder = load_embedder(str(tiny_model_dir))
    first = with_runtime(embedder, tmp_path)
    [speed_file] = tmp_path.glob("*.speed.json")
    measured = json.loads(speed_file.read_text())
    assert measured["torch_seconds"] > 0 and measured["onnx_seconds"] > 0
    faster = measured["torch_seconds"] >= 1.05 * measured["onnx_seconds"]
    assert (first.runtime is not None) == faster
    speed_file.write_text(json.dumps({"torch_seconds": 1.0, "onnx_seconds": 9.0}))
    assert with_runtime(embedder, tmp_path).runtime is None  # read back, not measured again
    speed_file.write_text(json.dumps({"torch_seconds": 9.0, "onnx_seconds": 1.0}))
    assert with_runtime(embedder, tmp_path).runtime is not None


def test_int8_vectors_are_close_and_keyed_apart(tiny_model_dir: Path, tmp_path: Path) -> None:
    fp32 = load_embedder(str(tiny_model_dir))
    int8 = with_runtime(fp32, tmp_path, "int8")
    assert int8.precision == "int8" and (tmp_path / f"{fp32.fingerprint}.int8.onnx").is_file()
    assert int8.side_fingerprint("document") == fp32.side_fingerprint("document") + "-int8"
    a, b = fp32.encode(TEXTS, "document"), int8.encode(TEXTS, "document")
    cosines = np.sum(a * b, axis=1)
    assert cosines.min() > 0.9 and cosines.mean() < 1.0


def test_int8_is_served_only_once_measured_within_limits(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    embedder = load_embedder(str(tiny_model_dir))
    with pytest.raises(InvalidInput) as missing:
        int8_encoder(embedder, tmp_path, 32, "tiny")
    assert missing.value.code == "int8_not_measured"
    figures = {
        "model_fingerprint": embedder.fingerprint,
        "dataset": "mini",
        "split": "test",
        "sample": 6,
        "mean_cosine": 0.95,
        "min_cosine": 0.9,
        "ndcg_at_10_fp32": 0.8,
        "ndcg_at_10_int8": 0.7,
        "accepted": False,
        "max_ndcg_drop": 1.0,
        "min_mean_cosine": 0.98,
    }
    save_quality(tmp_path, Int8Quality(**figures))
    with pytest.raises(InvalidInput) as lossy:
        int8_encoder(embedder, tmp_path, 32, "tiny")
    assert lossy.value.code == "int8_too_lossy" and "-10.00 points" in lossy.value.message
    save_quality(tmp_path, Int8Quality(**{**figures, "accepted": True}))
    encoder = int8_encoder(embedder, tmp_path, 32, "tiny")
    assert encoder.encode(TEXTS[:3], "query").shape == (3, 32)

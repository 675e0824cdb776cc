"""fp16/bf16 encodes: close to fp32 on a CUDA GPU; elsewhere fp32 and the reason, never a
pretence (jobs through HTTP: tests/api/test_half_precision.py)."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from core.jobs.kinds.compare import CompareJobSpec, _child_spec
from core.models.embedder import Embedder, half_unavailable, load_embedder
from core.serving import ModelKey, ServeSpec
from core.serving.model import ServedModel
from core.settings import Settings
from tests.conftest import sample_texts

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(scope="module")
def on_cpu(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir), device="cpu")


def test_half_on_the_cpu_is_refused_with_the_reason(on_cpu: Embedder) -> None:
    for precision in ("fp16", "bf16"):
        reason = half_unavailable(on_cpu, precision)
        assert reason == f"{precision} needs a CUDA GPU and this process encodes on the cpu"


def test_a_server_without_a_gpu_serves_an_opted_in_model_at_fp32_and_says_so(
    on_cpu: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    spec = ServeSpec(half_models={"tiny": "fp16"})
    with caplog.at_level(logging.WARNING, logger="embedtune.serving"):
        opted = ServedModel.wrap(ModelKey("tiny"), on_cpu, spec)
        other = ServedModel.wrap(ModelKey("other"), on_cpu, spec)
    assert opted.embedder.precision == other.embedder.precision == "fp32"
    assert [r.getMessage() for r in caplog.records] == [
        "model tiny opted into fp16, served at fp32: fp16 needs a CUDA GPU and this process "
        "encodes on the cpu"
    ]


def test_served_half_models_are_set_per_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMBEDTUNE_SERVE_HALF_MODELS", '{"mdl_1": "bf16"}')
    assert Settings().serve_half_models == {"mdl_1": "bf16"}
    monkeypatch.setenv("EMBEDTUNE_SERVE_HALF_MODELS", '{"mdl_1": "fp8"}')
    with pytest.raises(ValidationError, match="serve_half_models"):
        Settings()


def test_a_compare_scores_its_children_at_its_precision_but_remote_ones() -> None:
    spec = CompareJobSpec(
        dataset_id="ds_1",
        base_model="tiny",
        methods=["base", "nudge-n"],
        baselines=["remote:other"],
        precision="bf16",
    )
    precisions = {m: _child_spec(spec, m, {})[1].precision for m in ("base", "nudge-n")}
    assert precisions == {"base": "bf16", "nudge-n": "bf16"}
    assert _child_spec(spec, "baseline:remote:other", {})[1].precision == "fp32"


@cuda
@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_vectors_agree_with_fp32_on_the_gpu(tiny_model_dir: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU does not support bf16")
    fp32 = load_embedder(str(tiny_model_dir), device="cuda")
    assert half_unavailable(fp32, precision) is None
    half = replace(fp32, precision=precision)
    texts = sample_texts(64)
    a, b = fp32.encode(texts, "document"), half.encode(texts, "document")
    cosines = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    assert cosines.mean() >= 0.999
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # it did run in half
    assert half.side_fingerprint("document") == f"{fp32.side_fingerprint('document')}-{precision}"

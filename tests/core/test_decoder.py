"""LLM decoder embedders on a tiny random Qwen2 (tokenizer trained here): last-token pooling
reads the EOS position under left padding, LoRA on the decoder layers learns and saves an
adapter whose merged weights give the same vectors, and the memory estimate refuses what
cannot fit before any weight is loaded. The bf16 / gradient-checkpointing path runs on a GPU."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import SentenceTransformer

from core.datasets.model import RetrievalDataset
from core.errors import TooLarge
from core.models.decoder import default_method, is_decoder
from core.models.embedder import Embedder, load_embedder
from core.training import FinetuneSpec, run_finetune
from core.training.memory import check_memory, estimate
from tests.conftest import sample_texts
from tests.core.test_training import Recorder, loss_fell, small  # noqa: F401 (fixture)

TEXTS = ["protein", "a randomized trial of vitamin D in adults with low bone density"]


def build_tiny_decoder(out: Path) -> Path:
    """A 2-layer Qwen2 (hidden 32, grouped KV heads) with a byte-level BPE trained here."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2Model

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<|endoftext|>"])
    bpe.train_from_iterator(sample_texts(), trainer)
    from tokenizers import decoders

    bpe.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>")
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=bpe.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
    )
    Qwen2Model(config).save_pretrained(out, safe_serialization=True)
    return out


@pytest.fixture(scope="module")
def decoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_decoder(tmp_path_factory.mktemp("models") / "tiny-qwen2")


def test_last_token_pooling_reads_the_eos_position_under_left_padding(decoder_dir: Path) -> None:
    from transformers import AutoModel

    assert is_decoder(decoder_dir) and default_method(str(decoder_dir), None) == "lora"
    embedder = load_embedder(str(decoder_dir))
    assert isinstance(embedder, Embedder)
    tokenizer = embedder.st.tokenizer
    assert tokenizer.padding_side == "left"
    assert tokenizer("protein")["input_ids"][-1] == tokenizer.eos_token_id  # EOS appended
    assert [type(m).__name__ for m in embedder.st] == ["Transformer", "Pooling", "Normalize"]
    batched = embedder.encode(TEXTS, "document")  # one batch: the short text is left-padded
    alone = np.stack([embedder.encode([t], "document")[0] for t in TEXTS])
    np.testing.assert_allclose(batched, alone, atol=1e-5)
    # by hand: the decoder's hidden state at the last (EOS) token, L2-normalized
    model = AutoModel.from_pretrained(decoder_dir).eval()
    ids = torch.tensor([tokenizer(TEXTS[0])["input_ids"]])
    with torch.inference_mode():
        last = model(input_ids=ids).last_hidden_state[0, -1].numpy()
    np.testing.assert_allclose(batched[0], last / np.linalg.norm(last), atol=1e-5)


def test_lora_on_the_decoder_layers_learns_and_merges_to_the_same_vectors(
    decoder_dir: Path,
    small: RetrievalDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    spec = FinetuneSpec(
        method="lora",
        base_model=str(decoder_dir),
        epochs=2,
        batch_size=8,
        lora_learning_rate=2e-2,
        lora_rank=4,
        lora_alpha=8,
        max_seq_length=48,
        logging_steps=1,
        num_hard_negatives=1,
        scale=50.0,  # temperature 0.02, the LLM-embedder recipe
        gradient_accumulation_steps=2,
    )
    reporter = Recorder()
    result = run_finetune(spec, small, tmp_path / "lora", reporter=reporter)
    assert loss_fell(reporter)
    assert any(e.startswith("memory estimate: ") for e in reporter.events)
    out = result.model_dir
    adapter = json.loads((out / "adapter_config.json").read_text("utf-8"))
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "down_proj"} <= set(adapter["target_modules"])
    assert (out / "merged" / "model.safetensors").is_file()
    unmerged = SentenceTransformer(str(out), local_files_only=True)
    merged = SentenceTransformer(str(out / "merged"), local_files_only=True)
    assert merged.tokenizer.padding_side == "left"
    np.testing.assert_allclose(merged.encode(TEXTS), unmerged.encode(TEXTS), atol=1e-5)
    base = load_embedder(str(decoder_dir)).encode(TEXTS, "document")
    assert not np.allclose(base, unmerged.encode(TEXTS), atol=1e-4)


def test_the_memory_estimate_refuses_a_run_that_cannot_fit(
    decoder_dir: Path, tmp_path: Path
) -> None:
    mistral_7b = {
        "hidden_size": 4096,
        "num_hidden_layers": 32,
        "intermediate_size": 14336,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 32000,
    }
    lora = FinetuneSpec(
        method="lora", batch_size=8, max_seq_length=512, num_hard_negatives=3, bf16=True
    )
    found = estimate(mistral_7b, replace(lora, gradient_checkpointing=True), gpu=True, decoder=True)
    assert 7.0e9 < found.parameters < 7.3e9 and 40e6 < found.trained_parameters < 45e6
    assert found.weights == 2 * found.parameters and found.total < 24 << 30
    full = estimate(mistral_7b, replace(lora, method="full"), gpu=True, decoder=True)
    assert full.optimizer == 16 * full.parameters and full.total > 100 << 30
    huge = FinetuneSpec(method="full", base_model=str(decoder_dir), batch_size=65536)
    with pytest.raises(TooLarge) as caught:
        check_memory(decoder_dir, replace(huge, max_seq_length=32768), gpu=False)
    assert caught.value.code == "insufficient_memory" and "GiB" in str(caught.value)
    with pytest.raises(TooLarge):  # refused at run start, before the base model loads
        run_finetune(replace(huge, max_seq_length=32768), RetrievalDataset({}, {}), tmp_path)
    assert not list(tmp_path.iterdir())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU (bf16, checkpointing)")
@pytest.mark.skipif(
    not os.environ.get("EMBEDTUNE_TEST_DECODER"),
    reason="set EMBEDTUNE_TEST_DECODER to a local 0.5-1B decoder (e.g. Qwen2.5-0.5B)",
)
def test_gpu_lora_with_bf16_and_gradient_checkpointing_on_a_real_decoder(
    small: RetrievalDataset,  # noqa: F811
    tmp_path: Path,
) -> None:
    spec = FinetuneSpec(
        method="lora",
        base_model=os.environ["EMBEDTUNE_TEST_DECODER"],
        epochs=1,
        batch_size=8,
        max_seq_length=128,
        num_hard_negatives=3,
        scale=50.0,
        bf16=True,
        gradient_checkpointing=True,
        logging_steps=1,
    )
    reporter = Recorder()
    result = run_finetune(spec, small, tmp_path / "gpu", reporter=reporter)
    assert loss_fell(reporter) and (result.model_dir / "merged" / "model.safetensors").is_file()
    embedder = load_embedder(str(result.model_dir))
    assert embedder.st[0].auto_model.config._attn_implementation in ("sdpa", "flash_attention_2")


def test_a_decoder_is_served_like_any_model(decoder_dir: Path, tmp_path: Path) -> None:
    import asyncio

    from core.serving import Engine, ModelKey, ServeSpec

    want = load_embedder(str(decoder_dir)).encode(TEXTS, "document")
    engine = Engine(ServeSpec(onnx_dir=tmp_path / "onnx"), lambda key: load_embedder(key.ref))
    try:
        got = asyncio.run(engine.embed(ModelKey(str(decoder_dir)), TEXTS)).vectors
    finally:
        engine.close()
    np.testing.assert_allclose(got, want, atol=1e-5)  # ONNX Runtime, left-padded batch

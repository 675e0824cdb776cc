"""LLM decoder embedders (e5-mistral-7b-instruct, Qwen3-Embedding, ...): last-token pooling over
left-padded inputs that end with the EOS token, sdpa (or flash) attention and bf16 on a GPU.

A bare transformers decoder directory (``config.json`` of a decoder family, no
``modules.json``) is assembled here into a sentence-transformers model: Transformer (left
padding) -> Pooling("lasttoken") -> Normalize. Once saved (a fine-tune saves it), the pooling,
the padding side and the EOS template live in the model's own files. ``trust_remote_code``
stays off: the families below are built into transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

DECODER_TYPES = frozenset(
    {"qwen2", "qwen3", "llama", "mistral", "gemma", "gemma2", "gemma3_text", "phi3"}
)
# LoRA targets: the attention and MLP projections of every decoder layer.
DECODER_LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
ENCODER_LORA_TARGETS = ("query", "key", "value", "dense")  # BERT-style encoders


def model_type(model_dir: Path) -> str | None:
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text("utf-8")).get("model_type")


def is_decoder(model_dir: Path) -> bool:
    """Whether ``model_dir`` holds a decoder (causal LM) family EmbedTune embeds with."""
    return model_type(model_dir) in DECODER_TYPES


def default_method(location: str, models_dir: Path | None) -> str:
    """The fine-tune method a model gets when none is asked: LoRA for an LLM decoder (local
    directory, or a name in ``models_dir``), a full fine-tune otherwise."""
    path = Path(location)
    if not path.is_absolute():  # a client's reference is never a path of its own
        path = Path(models_dir) / location if models_dir is not None else Path("/nonexistent")
    if path.is_dir() and is_decoder(path):
        return "lora"
    return "full"


def lora_targets(model_dir: Path) -> tuple[str, ...]:
    return DECODER_LORA_TARGETS if is_decoder(model_dir) else ENCODER_LORA_TARGETS


def attention_kwargs(cuda: bool) -> dict[str, Any]:
    """flash_attention_2 when installed on a GPU, else sdpa; bf16 weights on a GPU."""
    import importlib.util

    import torch

    if not cuda:
        return {"attn_implementation": "sdpa"}
    flash = importlib.util.find_spec("flash_attn") is not None
    return {
        "attn_implementation": "flash_attention_2" if flash else "sdpa",
        "dtype": torch.bfloat16,
    }


def decoder_sentence_transformer(model_dir: Path, *, device: str | None) -> SentenceTransformer:
    """A sentence-transformers model over the bare decoder in ``model_dir``."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer import modules

    cuda = (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")
    transformer = modules.Transformer(
        str(model_dir),
        model_kwargs={"use_safetensors": True, **attention_kwargs(cuda)},
        processor_kwargs={"padding_side": "left"},
        config_kwargs={},
    )
    append_eos(transformer.tokenizer)
    pooling = modules.Pooling(transformer.get_embedding_dimension(), "lasttoken")
    return SentenceTransformer(modules=[transformer, pooling, modules.Normalize()], device=device)


def append_eos(tokenizer: Any) -> None:
    """Make every encoding end with the EOS token (what last-token pooling reads), when the
    tokenizer does not already; EOS also pads when there is no pad token."""
    from tokenizers.processors import TemplateProcessing

    eos, eos_id = tokenizer.eos_token, tokenizer.eos_token_id
    if eos is None:
        return
    if tokenizer.pad_token is None:
        tokenizer.pad_token = eos
    if tokenizer("a")["input_ids"][-1] == eos_id:
        return
    bos = [tokenizer.bos_token] if tokenizer.bos_token and _adds_bos(tokenizer) else []
    specials = [(t, tokenizer.convert_tokens_to_ids(t)) for t in dict.fromkeys([*bos, eos])]
    tokenizer.backend_tokenizer.post_processor = TemplateProcessing(
        single=" ".join([*bos, "$A", eos]),
        pair=" ".join([*bos, "$A", eos, "$B", eos]),
        special_tokens=specials,
    )


def _adds_bos(tokenizer: Any) -> bool:
    ids = tokenizer("a")["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id

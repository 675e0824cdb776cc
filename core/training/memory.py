"""How much memory a fine-tune needs, estimated from the model's ``config.json`` before any
weight is loaded, and the refusal of one that cannot fit the worker's device.

The estimate (bytes):
- weights: every parameter at 2 bytes (bf16/fp16 on a GPU) or 4 (fp32);
- gradients + AdamW: 16 bytes per trained parameter (fp32 gradient, two moments, master copy);
- activations: per text in a step (``batch_size * (1 + num_hard_negatives)`` texts of
  ``max_seq_length`` tokens), ``34 * hidden`` bytes per token per layer at 16-bit (twice at
  fp32; Korthikanti et al. 2022, attention by sdpa/flash so no seq² term); with gradient
  checkpointing only each layer's input (``2 * hidden``) plus one layer's full set is kept.
It is an estimate: allocator slack and the tokenizer are not in it, so it is compared with
``HEADROOM`` of the device's memory.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import TooLarge
from core.models.decoder import DECODER_LORA_TARGETS, is_decoder
from core.training.spec import FinetuneSpec

HEADROOM = 0.9
GIB = 1 << 30


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    trained_parameters: int
    weights: int
    optimizer: int
    activations: int

    @property
    def total(self) -> int:
        return self.weights + self.optimizer + self.activations

    def describe(self) -> str:
        parts = (("weights", self.weights), ("optimizer", self.optimizer))
        parts += (("activations", self.activations),)
        detail = ", ".join(f"{name} {value / GIB:.1f}" for name, value in parts)
        return (
            f"{self.total / GIB:.1f} GiB ({detail}; {self.parameters / 1e9:.2f}B parameters, "
            f"{self.trained_parameters / 1e6:.1f}M trained)"
        )

    def to_dict(self) -> dict[str, int]:
        return {**asdict(self), "total": self.total}


def estimate(config: dict, spec: FinetuneSpec, *, gpu: bool, decoder: bool) -> MemoryEstimate:
    """The memory ``spec`` needs for a model whose transformers config is ``config``."""
    h, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
    inter = int(config.get("intermediate_size") or 4 * h)
    heads = int(config.get("num_attention_heads") or 1)
    head_dim = int(config.get("head_dim") or h // heads)
    kv = int(config.get("num_key_value_heads") or heads) * head_dim
    shapes = _layer_shapes(h, inter, heads * head_dim, kv, decoder)
    per_layer = sum(i * o for i, o in shapes.values()) + 4 * h
    params = int(config.get("vocab_size", 0)) * h + layers * per_layer
    params += int(config.get("max_position_embeddings", 0)) * h if not decoder else 0
    if spec.method == "lora":
        targets = spec.lora_target_modules or (DECODER_LORA_TARGETS if decoder else shapes)
        trained = layers * sum(
            spec.lora_rank * (i + o) for name, (i, o) in shapes.items() if name in targets
        )
    else:
        trained = params
    half = gpu and (spec.bf16 or spec.fp16 or decoder)
    width = 2 if half else 4
    texts = spec.batch_size * (1 + spec.num_hard_negatives)
    tokens = texts * spec.max_seq_length
    per_token_layer = 34 * h * width // 2
    if spec.gradient_checkpointing and gpu:
        activations = tokens * (layers * 2 * h * width // 2 + per_token_layer)
    else:
        activations = tokens * layers * per_token_layer
    return MemoryEstimate(params, trained, params * width, trained * 16, activations)


def _layer_shapes(h: int, inter: int, q: int, kv: int, decoder: bool) -> dict[str, tuple[int, int]]:
    """(in, out) of each linear layer of one transformer block, by module name."""
    if decoder:
        return {
            "q_proj": (h, q),
            "k_proj": (h, kv),
            "v_proj": (h, kv),
            "o_proj": (q, h),
            "gate_proj": (h, inter),
            "up_proj": (h, inter),
            "down_proj": (inter, h),
        }
    # BERT: attention.output.dense, intermediate.dense and output.dense all match "dense"
    return {"query": (h, h), "key": (h, h), "value": (h, h), "dense": (h, h + 2 * inter)}


def device_bytes(gpu: bool) -> int:
    """Memory of the device a run trains on: the GPU's total, else the host's available."""
    if gpu:
        import torch

        return int(torch.cuda.mem_get_info()[1])
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def check_memory(model_dir: Path, spec: FinetuneSpec, *, gpu: bool) -> MemoryEstimate | None:
    """The estimate for the model in ``model_dir``; ``TooLarge`` (``insufficient_memory``)
    when it exceeds ``HEADROOM`` of the device. None for a model without a transformers
    config (nothing to estimate from)."""
    path = Path(model_dir) / "config.json"
    if spec.method == "adapter" or not path.is_file():  # the adapter trains no transformer
        return None
    config = json.loads(path.read_text("utf-8"))
    if "hidden_size" not in config or "num_hidden_layers" not in config:
        return None
    found = estimate(config, spec, gpu=gpu, decoder=is_decoder(model_dir))
    have = device_bytes(gpu)
    if have and found.total > HEADROOM * have:
        hint = "use method 'lora', " if spec.method == "full" else ""
        raise TooLarge(
            f"this fine-tune needs about {found.describe()} but the worker's "
            f"{'GPU' if gpu else 'host'} has {have / GIB:.1f} GiB; {hint}lower batch_size or "
            "max_seq_length (gradient_accumulation_steps keeps the effective batch), or turn on "
            "gradient_checkpointing",
            code="insufficient_memory",
            param="params.batch_size",
        )
    return found

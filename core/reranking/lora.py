"""LoRA adapters on a cross-encoder (PEFT): the classification head trains in full."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.reranking.spec import RerankSpec

if TYPE_CHECKING:
    from sentence_transformers import CrossEncoder


def add_rerank_lora(model: CrossEncoder, spec: RerankSpec) -> None:
    """Attach a fresh LoRA adapter to the encoder; the new one-label head stays trainable
    (``modules_to_save``), since it starts from random weights."""
    from peft import LoraConfig, TaskType

    model.add_adapter(
        LoraConfig(
            task_type=TaskType.SEQ_CLS,
            r=spec.lora_rank,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=list(spec.lora_target_modules),
            modules_to_save=["classifier"],
        )
    )

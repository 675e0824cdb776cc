"""LoRA adapters on a sentence-transformers model (PEFT): add, merge, save merged."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from core.models.config import CONFIG_FILE
from core.models.decoder import ENCODER_LORA_TARGETS
from core.training.spec import FinetuneSpec

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer


def add_lora(
    model: SentenceTransformer, spec: FinetuneSpec, targets: tuple[str, ...] = ENCODER_LORA_TARGETS
) -> None:
    """Attach a fresh LoRA adapter; only its weights train, and only they are saved.
    ``targets`` (the architecture's, see ``core.models.decoder``) unless the spec names some."""
    from peft import LoraConfig, TaskType

    model.add_adapter(
        LoraConfig(
            task_type=TaskType.FEATURE_EXTRACTION,
            r=spec.lora_rank,
            lora_alpha=spec.lora_alpha,
            lora_dropout=spec.lora_dropout,
            target_modules=list(spec.lora_target_modules or targets),
        )
    )


def merge_lora(model: SentenceTransformer) -> SentenceTransformer:
    """Fold the LoRA weights into the base weights, in place; the result saves as a plain model.

    A reloaded adapter directory holds a ``PeftModel``; a model trained here holds LoRA layers
    injected by ``add_adapter``. Both end as the bare transformers model.
    """
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    transformer = model[0]
    if isinstance(transformer.model, PeftModel):
        transformer.model = transformer.model.merge_and_unload()
    network = transformer.model
    for name, module in list(network.named_modules()):
        if isinstance(module, BaseTunerLayer):
            module.merge()
            parent, _, child = name.rpartition(".")
            setattr(network.get_submodule(parent), child, module.get_base_layer())
    network._hf_peft_config_loaded = False
    if hasattr(network, "peft_config"):
        del network.peft_config
    # Loading an adapter registers key renamings (base_model.model., lora_*) that saving would
    # apply in reverse; the merged weights are plain.
    network._weight_conversions = []
    return model


def save_merged(adapter_dir: Path, out_dir: Path) -> Path:
    """Write the merged form of a LoRA model directory (pooling and EmbedTune config kept)."""
    from sentence_transformers import SentenceTransformer

    model = merge_lora(SentenceTransformer(str(adapter_dir), local_files_only=True))
    model.save_pretrained(str(out_dir), create_model_card=False)
    for name in (CONFIG_FILE, "README.md"):
        if (Path(adapter_dir) / name).is_file():
            shutil.copy(Path(adapter_dir) / name, Path(out_dir) / name)
    return Path(out_dir)

"""ColBERT fine-tuning: a ``MultiVectorEncoder`` from a ColBERT checkpoint or a plain encoder,
and the late-interaction losses (in-batch + hard negatives over MaxSim scores).

PyLate 1.6 pins sentence-transformers 5.3 and fails under 6.2 (see docs/late-interaction.md);
sentence-transformers 6 carries PyLate's ColBERT model, losses and collator as
``sentence_transformers.multi_vector_encoder``, which is what this module uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.models.multi_vector import set_lengths
from core.models.resolve import ResolvedModel
from core.training.spec import FinetuneSpec

if TYPE_CHECKING:
    import torch
    from sentence_transformers import MultiVectorEncoder


def start_model(base: ResolvedModel, spec: FinetuneSpec) -> MultiVectorEncoder:
    """The model to train: a late-interaction checkpoint as it is, or an encoder given a fresh
    128-dim token projection, seeded (how PyLate starts ColBERT from e.g. all-MiniLM-L6-v2)."""
    import torch
    from sentence_transformers import MultiVectorEncoder

    torch.manual_seed(spec.seed)
    model = MultiVectorEncoder(
        str(base.path), local_files_only=True, model_kwargs={"use_safetensors": True}
    )
    set_lengths(model, spec.query_length, spec.max_seq_length)
    return model


def multi_vector_loss(spec: FinetuneSpec, model: MultiVectorEncoder) -> torch.nn.Module:
    """MNRL over MaxSim scores (in-batch + hard negatives), or its cached variant."""
    from sentence_transformers.multi_vector_encoder import losses

    if spec.loss == "cached_mnrl":
        return losses.CachedMultiVectorMultipleNegativesRankingLoss(
            model, scale=spec.loss_scale, mini_batch_size=spec.mini_batch_size
        )
    return losses.MultiVectorMultipleNegativesRankingLoss(model, scale=spec.loss_scale)

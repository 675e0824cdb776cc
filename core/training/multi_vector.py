"""ColBERT fine-tuning: a ``MultiVectorEncoder`` from a ColBERT checkpoint or a plain encoder,
and the late-interaction losses (in-batch + hard negatives over MaxSim scores).

PyLate 1.6 pins sentence-transformers 5.3 and fails under 6.2 (see docs/late-interaction.md);
sentence-transformers 6 carries PyLate's ColBERT model, losses and collator as
``sentence_transformers.multi_vector_encoder``, which is what this module uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import encode_cached
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.models.multi_vector import set_lengths
from core.models.resolve import ResolvedModel
from core.training.examples import training_triples, triple_columns
from core.training.spec import DENSE_SCALE, FinetuneSpec

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
    """MNRL over MaxSim scores (in-batch + hard negatives), its cached variant, or KL
    distillation of a teacher's scores."""
    from sentence_transformers.multi_vector_encoder import losses

    from core.training.distributed import world_size

    gather = world_size() > 1  # in-batch negatives from every DDP rank
    if spec.loss == "distillation":
        return losses.MultiVectorDistillKLDivLoss(model)
    if spec.loss == "cached_mnrl":
        return losses.CachedMultiVectorMultipleNegativesRankingLoss(
            model,
            scale=spec.loss_scale,
            mini_batch_size=spec.mini_batch_size,
            gather_across_devices=gather,
        )
    return losses.MultiVectorMultipleNegativesRankingLoss(
        model, scale=spec.loss_scale, gather_across_devices=gather
    )


def distillation_columns(
    spec: FinetuneSpec,
    ds: RetrievalDataset,
    split: str,
    teacher: Embedder,
    cache: EmbeddingCache | None,
) -> dict[str, list]:
    """The training table plus ``label``: the teacher's logits (cosine x ``DENSE_SCALE``) of
    each row's positive and negatives, in column order."""
    triples = training_triples(ds, split, spec.num_hard_negatives, seed=spec.seed)
    columns: dict[str, list] = dict(triple_columns(ds, triples))
    queries, _ = encode_cached(teacher, columns["anchor"], "query", cache)
    scores = [
        (encode_cached(teacher, columns[name], "document", cache)[0] * queries).sum(axis=1)
        for name in columns
        if name != "anchor"
    ]
    columns["label"] = (np.stack(scores, axis=1) * DENSE_SCALE).tolist()
    return columns

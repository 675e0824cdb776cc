"""Model bodies."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ModelRead(BaseModel):
    """OpenAI's model object (``id``, ``object``, ``created``, ``owned_by``) plus our fields."""

    id: str
    object: Literal["model"] = "model"
    created: int = Field(0, description="Unix seconds: when the model was made or installed.")
    owned_by: str = Field(description="The hub organisation of a base model; 'embedtune' else.")
    kind: Literal["base", "finetuned", "reranker"] = Field(
        description="A base model, a fine-tuned embedder, or a fine-tuned reranker (/v1/rerank)."
    )
    reference: str
    method: str | None = None
    base_model: str | None = None
    job_id: str | None = None
    dataset_id: str | None = None
    metrics: dict[str, Any] = {}
    created_at: datetime | None = None
    quantization: dict[str, Any] | None = Field(
        None,
        description="int8 against fp32, as a quantize job measured it (cosines on a corpus "
        "sample, nDCG@10 change, accepted); shown by GET /v1/models/{id} only.",
    )


class ModelCard(BaseModel):
    model_id: str
    markdown: str
    html: str = Field(description="The Markdown rendered; raw HTML in it is escaped.")


class ModelList(BaseModel):
    """OpenAI's list shape, so that ``client.models.list()`` reads it."""

    object: Literal["list"] = "list"
    data: list[ModelRead]

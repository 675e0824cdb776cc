"""/v1/rerank: base and fine-tuned rerankers through the embeddings' batching engine."""

from __future__ import annotations

import uuid

from fastapi import APIRouter

from api.routes.embeddings import EngineDep, OwnersDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.rerank import RerankCreate, RerankList
from api.security import Inference
from core.serving import ModelKey

router = APIRouter(prefix="/v1", tags=["rerank"], responses=ERROR_RESPONSES)


@router.post("/rerank", response_model=RerankList, response_model_exclude_none=True)
async def rerank(
    body: RerankCreate, engine: EngineDep, owners: OwnersDep, caller: Inference
) -> RerankList:
    """Score every document against the query and return them best first. 404 for an unknown
    model (another project's tuned model is one), 422 ``not_a_reranker`` for an embedding
    model, 413 for too many documents or a pair over the maximum tokens when not truncating,
    429 with ``Retry-After`` when the model's queue is full: the table of /v1/embeddings."""
    await owners.check(body.model, caller.project_id)
    texts = body.texts
    scored = await engine.rerank(ModelKey(body.model), body.query, texts, truncate=body.truncate)
    scores = scored.vectors[:, 0].tolist()
    order = sorted(range(len(texts)), key=lambda i: -scores[i])[: body.top_n]
    results = [
        {
            "index": i,
            "relevance_score": scores[i],
            "document": {"text": texts[i]} if body.return_documents else None,
        }
        for i in order
    ]
    tokens = {"prompt_tokens": scored.tokens, "total_tokens": scored.tokens}
    meta = {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}}
    return RerankList(
        id=str(uuid.uuid4()), model=body.model, results=results, usage=tokens, meta=meta
    )

"""/v1/embeddings: OpenAI-compatible embeddings from base and fine-tuned models (token
vectors of ColBERT models with ``"output": "multi_vector"``); /v1/scores: their MaxSim scores."""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Depends, Request, Response

from api.schemas.common import ERROR_RESPONSES
from api.schemas.embeddings import (
    EmbeddingCreate,
    EmbeddingList,
    Score,
    ScoreCreate,
    ScoreList,
    Usage,
)
from api.security import Inference
from core.errors import InvalidInput
from core.services.serving import ModelOwners
from core.serving import Encoded, Engine, ModelKey
from core.serving.token_ids import TokenIdMode, decode_openai
from core.serving.vectors import to_base64

router = APIRouter(prefix="/v1", tags=["embeddings"], responses=ERROR_RESPONSES)


async def get_engine(request: Request) -> Engine:  # async: no thread hop per request
    return request.app.state.engine


async def get_owners(request: Request) -> ModelOwners:
    return request.app.state.model_owners


EngineDep = Annotated[Engine, Depends(get_engine)]
OwnersDep = Annotated[ModelOwners, Depends(get_owners)]


@router.post("/embeddings", response_model=EmbeddingList)
async def create_embeddings(
    body: EmbeddingCreate,
    engine: EngineDep,
    owners: OwnersDep,
    caller: Inference,
    request: Request,
) -> Response:
    """Embed texts (or token ids, see ``EmbeddingCreate.input``), batched with concurrent
    requests. 404 for an unknown model (another project's fine-tuned model is one), 413 for
    too many inputs or an input over the model's maximum tokens when not truncating, 429 with
    ``Retry-After`` when the model's queue is full."""
    await owners.check(body.model, caller.project_id)
    mode = request.app.state.settings.serve_token_ids
    if body.output == "multi_vector":
        vectors, tokens = await engine.embed_tokens(
            ModelKey(body.model),
            await _texts(body, engine, mode),
            side=body.input_type,
            truncate=body.truncate,
        )
        return Response(_json(Encoded(vectors, tokens), body), media_type="application/json")
    encoded = await engine.embed(
        ModelKey(body.model),
        await _texts(body, engine, mode),
        side=body.input_type,
        truncate=body.truncate,
        dimensions=body.dimensions,
    )
    return Response(_json(encoded, body), media_type="application/json")


async def _texts(body: EmbeddingCreate, engine: Engine, mode: TokenIdMode) -> list[str]:
    ids = body.token_ids
    if ids is None:
        return body.texts
    if mode == "refuse":
        raise InvalidInput(
            "this server does not accept token ids (serve_token_ids=refuse); send text",
            code="token_ids_refused",
            param="input",
        )
    return (
        decode_openai(ids) if mode == "openai" else await engine.decode(ModelKey(body.model), ids)
    )


@router.post("/scores", response_model=ScoreList)
async def create_scores(
    body: ScoreCreate, engine: EngineDep, owners: OwnersDep, caller: Inference
) -> ScoreList:
    """MaxSim scores of (query, document) pairs with a late-interaction (ColBERT) model;
    422 ``not_multi_vector`` for a model that gives one vector per text."""
    await owners.check(body.model, caller.project_id)
    scores, tokens = await engine.score_pairs(
        ModelKey(body.model), [p.query for p in body.pairs], [p.document for p in body.pairs]
    )
    return ScoreList(
        data=[Score(index=i, score=s) for i, s in enumerate(scores)],
        model=body.model,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _json(encoded: Encoded, body: EmbeddingCreate) -> bytes:
    """The ``EmbeddingList`` body, written by orjson straight from the float32 rows."""
    rows = encoded.vectors
    vectors = [to_base64(v) for v in rows] if body.encoding_format == "base64" else list(rows)
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": encoded.tokens, "total_tokens": encoded.tokens}
    document = {"object": "list", "data": data, "model": body.model, "usage": usage}
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)

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
from core.services.aliases import AliasResolver
from core.services.serving import ModelOwners
from core.serving import Encoded, Engine, ModelKey
from core.serving.token_ids import TokenIdMode, decode_openai
from core.serving.vectors import to_base64

router = APIRouter(prefix="/v1", tags=["embeddings"], responses=ERROR_RESPONSES)


async def get_engine(request: Request) -> Engine:  # async: no thread hop per request
    return request.app.state.engine


async def get_owners(request: Request) -> ModelOwners:
    return request.app.state.model_owners


async def get_aliases(request: Request) -> AliasResolver:
    return request.app.state.aliases


EngineDep = Annotated[Engine, Depends(get_engine)]
OwnersDep = Annotated[ModelOwners, Depends(get_owners)]
AliasesDep = Annotated[AliasResolver, Depends(get_aliases)]


async def served_model(
    name: str, aliases: AliasResolver, owners: ModelOwners, project_id: str
) -> str:
    """The model that answers for ``name``: an alias of the project resolved once for the
    whole request (its model id), else ``name``; 404 for another project's tuned model."""
    target = await aliases.resolve(project_id, name)
    model = target.model_id if target is not None else name
    await owners.check(model, project_id)
    return model


@router.post("/embeddings", response_model=EmbeddingList)
async def create_embeddings(
    body: EmbeddingCreate,
    engine: EngineDep,
    owners: OwnersDep,
    aliases: AliasesDep,
    caller: Inference,
    request: Request,
) -> Response:
    """Embed texts (or token ids, see ``EmbeddingCreate.input``), batched with concurrent
    requests. 404 for an unknown model (another project's fine-tuned model is one), 413 for
    too many inputs or an input over the model's maximum tokens when not truncating, 429 with
    ``Retry-After`` when the model's queue is full. ``model`` may be an alias of the
    project (``/v1/aliases``): the answer's ``model`` is then the model id that embedded."""
    model = await served_model(body.model, aliases, owners, caller.project_id)
    key = ModelKey(model)
    mode = request.app.state.settings.serve_token_ids
    if body.output == "multi_vector":
        vectors, tokens = await engine.embed_tokens(
            key,
            await _texts(body, engine, mode, key),
            side=body.input_type,
            truncate=body.truncate,
        )
        encoded = Encoded(vectors, tokens)
        return Response(_json(encoded, body, model), media_type="application/json")
    encoded = await engine.embed(
        key,
        await _texts(body, engine, mode, key),
        side=body.input_type,
        truncate=body.truncate,
        dimensions=body.dimensions,
    )
    return Response(_json(encoded, body, model), media_type="application/json")


async def _texts(
    body: EmbeddingCreate, engine: Engine, mode: TokenIdMode, key: ModelKey
) -> list[str]:
    ids = body.token_ids
    if ids is None:
        return body.texts
    if mode == "refuse":
        raise InvalidInput(
            "this server does not accept token ids (serve_token_ids=refuse); send text",
            code="token_ids_refused",
            param="input",
        )
    return decode_openai(ids) if mode == "openai" else await engine.decode(key, ids)


@router.post("/scores", response_model=ScoreList)
async def create_scores(
    body: ScoreCreate, engine: EngineDep, owners: OwnersDep, aliases: AliasesDep, caller: Inference
) -> ScoreList:
    """MaxSim scores of (query, document) pairs with a late-interaction (ColBERT) model;
    422 ``not_multi_vector`` for a model that gives one vector per text."""
    model = await served_model(body.model, aliases, owners, caller.project_id)
    scores, tokens = await engine.score_pairs(
        ModelKey(model), [p.query for p in body.pairs], [p.document for p in body.pairs]
    )
    return ScoreList(
        data=[Score(index=i, score=s) for i, s in enumerate(scores)],
        model=model,
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )


def _json(encoded: Encoded, body: EmbeddingCreate, model: str) -> bytes:
    """The ``EmbeddingList`` body, written by orjson straight from the float32 rows."""
    rows = encoded.vectors
    vectors = [to_base64(v) for v in rows] if body.encoding_format == "base64" else list(rows)
    data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vectors)]
    usage = {"prompt_tokens": encoded.tokens, "total_tokens": encoded.tokens}
    document = {"object": "list", "data": data, "model": model, "usage": usage}
    return orjson.dumps(document, option=orjson.OPT_SERIALIZE_NUMPY)

"""/v1/indexes: the caller's project's indexes (built by index and nudge jobs); search one."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import FactoryDep, IndexDep, SessionDep
from api.routes.embeddings import EngineDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.embeddings import Usage
from api.schemas.indexes import (
    DocumentHit,
    IndexList,
    IndexRead,
    QueryResult,
    SearchRequest,
    SearchResults,
)
from api.security import Inference
from core.services.serving import load_index
from core.store import repos
from core.store.tables import IndexRow

router = APIRouter(prefix="/v1/indexes", tags=["indexes"], responses=ERROR_RESPONSES)


@router.get("", response_model=IndexList)
def list_indexes(session: SessionDep, caller: Inference) -> IndexList:
    """The index versions of the caller's project, newest first."""
    rows = repos.list_rows(session, IndexRow, project_id=caller.project_id)
    return IndexList(items=[IndexRead.model_validate(r) for r in rows])


@router.get("/{index_id}", response_model=IndexRead)
def get_index(row: IndexDep) -> IndexRead:
    return IndexRead.model_validate(row)


@router.post("/{index_id}/search", response_model=SearchResults)
async def search_index(
    body: SearchRequest, row: IndexDep, factory: FactoryDep, engine: EngineDep
) -> SearchResults:
    """The ``top_k`` documents nearest each query; the index's model encodes the queries
    (query side). The index and its documents are loaded once and shared by all requests."""
    hits, tokens = await engine.search(
        row.id, lambda: load_index(factory, row), body.texts, body.top_k
    )
    return SearchResults(
        index_id=row.id,
        model=row.model,
        results=[
            QueryResult(query=q, documents=[DocumentHit(**vars(h)) for h in found])
            for q, found in zip(body.texts, hits, strict=True)
        ],
        usage=Usage(prompt_tokens=tokens, total_tokens=tokens),
    )

"""/v1/indexes: search an index built by an ``index`` job."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path

from api.deps import FactoryDep, SessionDep
from api.routes.embeddings import EngineDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.embeddings import Usage
from api.schemas.indexes import DocumentHit, QueryResult, SearchRequest, SearchResults
from core.serving.catalog import load_index
from core.store import repos
from core.store.tables import IndexRow

router = APIRouter(prefix="/v1/indexes", tags=["indexes"], responses=ERROR_RESPONSES)


def index(
    session: SessionDep, index_id: Annotated[str, Path(pattern=r"^[\w-]{1,40}$")]
) -> IndexRow:
    return repos.get_or_404(session, IndexRow, index_id, "index")


IndexDep = Annotated[IndexRow, Depends(index)]


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

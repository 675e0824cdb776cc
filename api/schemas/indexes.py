"""Index bodies: an index version as read, and searches."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, model_validator

from api.schemas.common import ReadModel
from api.schemas.embeddings import Usage

Text = Annotated[str, Field(min_length=1)]


class IndexRead(ReadModel):
    id: str
    model: str
    dataset_id: str
    job_id: str | None
    kind: str
    size: int
    dim: int
    method: str = Field(description='"base", or the NUDGE variant that tuned the vectors.')
    tuning: dict[str, Any]
    created_at: datetime


class IndexList(BaseModel):
    items: list[IndexRead]


class SearchRequest(BaseModel):
    query: Text | None = Field(None, description="One query; or give `queries`.")
    queries: list[Text] | None = Field(None, description="Several queries, answered in order.")
    top_k: int = Field(10, ge=1, le=1000, description="Documents per query (at most the index).")

    @model_validator(mode="after")
    def _one_of(self) -> SearchRequest:
        if (self.query is None) == (self.queries is None):
            raise ValueError("give exactly one of 'query' and 'queries'")
        return self

    @property
    def texts(self) -> list[str]:
        return [self.query] if self.query is not None else list(self.queries or [])


class DocumentHit(BaseModel):
    id: str
    score: float = Field(description="Inner product of the normalized vectors (cosine).")
    title: str
    text: str


class QueryResult(BaseModel):
    query: str
    documents: list[DocumentHit]


class SearchResults(BaseModel):
    object: Literal["list"] = "list"
    index_id: str
    model: str
    results: list[QueryResult]
    usage: Usage

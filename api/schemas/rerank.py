"""Rerank bodies in the schema TEI, infinity, Cohere and Jina clients send and read."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

Text = Annotated[str, Field(min_length=1)]


class TextDocument(BaseModel):
    """A document as an object (Cohere, Jina); only ``text`` is read."""

    text: Text


class RerankCreate(BaseModel):
    model: str = Field(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="A reranker: a fine-tuned reranker id (mdl_...) or a base reranker reference.",
    )
    query: Text
    documents: list[Text | TextDocument] = Field(
        min_length=1, description="Texts, or objects with a `text` field."
    )
    top_n: int | None = Field(None, ge=1, description="Return the best n only (all when unset).")
    return_documents: bool = Field(False, description="Echo each document's text in its result.")
    truncate: bool | None = Field(
        None,
        description="true cuts a (query, document) pair over the model's maximum tokens, false "
        "refuses it with 413; unset takes the server's default (as /v1/embeddings).",
    )
    max_chunks_per_doc: int | None = Field(None, description="Accepted (Cohere v1); not used.")
    raw_scores: bool = Field(False, description="Accepted (TEI); scores are always activated.")

    @property
    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


class RerankResult(BaseModel):
    index: int = Field(description="The document's position in the request.")
    relevance_score: float = Field(description="The model's score (sigmoid for one label).")
    document: TextDocument | None = None


class RerankUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class RerankList(BaseModel):
    """Results best first: Jina/infinity's ``results`` and ``usage``, Cohere's ``id``/``meta``."""

    object: str = "rerank"
    id: str
    model: str
    results: list[RerankResult]
    usage: RerankUsage
    meta: dict = Field(default_factory=dict)

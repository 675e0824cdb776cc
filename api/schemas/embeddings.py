"""OpenAI-compatible embedding bodies, plus the ``input_type``, ``truncate`` and ``output``
extensions, and MaxSim pair scores of late-interaction models."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

Text = Annotated[str, Field(min_length=1)]
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class EmbeddingCreate(BaseModel):
    input: Text | list[Text] | TokenIds | list[TokenIds] = Field(
        description="A text, a list of texts, or token ids (a list of ints, or a list of "
        "lists): OpenAI's cl100k_base ids by default (what langchain-openai sends), decoded to "
        "text and encoded by the model; the server's `serve_token_ids` setting can read them "
        "as the model's own ids instead, or refuse them."
    )
    model: str = Field(
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",  # printable ASCII: hub ids, names, model ids
        description="A base model reference or a fine-tuned model id (mdl_...).",
    )
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(
        None, ge=1, description="Keep the first dimensions and L2-normalize again (Matryoshka)."
    )
    user: str | None = Field(None, description="Accepted for compatibility; not stored.")
    input_type: Literal["query", "document"] = Field(
        "document",
        description="Extension: the side of retrieval, which picks the model's stored "
        "instruction and, for a query-side adapter model, whether the adapter applies. "
        "Evaluation embeds queries as 'query' and the corpus as 'document'; OpenAI clients "
        "send no side, so the default is 'document': vectors match the corpus of the "
        "platform's indexes and a client that never sets it gets one consistent space. "
        "Send 'query' for search queries (extra_body with the openai client) to get the "
        "query instruction and adapter the evaluation measured.",
    )
    truncate: bool | None = Field(
        None,
        description="Extension: true cuts inputs longer than the model's maximum tokens, false "
        "refuses them with 413; unset takes the server's default for the model "
        "(`serve_truncate`, `serve_truncate_models`; truncate unless configured).",
    )

    output: Literal["dense", "multi_vector"] = Field(
        "dense",
        description="Extension: 'multi_vector' returns a late-interaction (ColBERT) model's "
        "token vectors, one list of floats per token (`embedding` is then a list of lists; "
        "`encoding_format` float only, no `dimensions`). A ColBERT model refuses 'dense'.",
    )

    @model_validator(mode="after")
    def _multi_vector_options(self) -> EmbeddingCreate:
        if self.output == "multi_vector" and self.dimensions is not None:
            raise ValueError("dimensions does not apply to output 'multi_vector'")
        if self.output == "multi_vector" and self.encoding_format != "float":
            raise ValueError("output 'multi_vector' is sent as floats only")
        return self

    @property
    def token_ids(self) -> list[list[int]] | None:
        """The input as lists of token ids, or None when it is text."""
        value = self.input
        if isinstance(value, str) or not value or isinstance(value[0], str):
            return None
        return [value] if isinstance(value[0], int) else value  # type: ignore[list-item]

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input  # type: ignore[return-value]


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | list[list[float]] | str = Field(
        description="Floats, base64 of float32 bytes, or one list of floats per token."
    )


class Usage(BaseModel):
    prompt_tokens: int = Field(
        description="Tokens the model processed, counted with its tokenizer: instruction, "
        "text and special tokens, after truncation."
    )
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Embedding]
    model: str
    usage: Usage


class ScorePair(BaseModel):
    query: Text
    document: Text


class ScoreCreate(BaseModel):
    model: str = Field(max_length=200, pattern=r"^[\x21-\x7e]+$")
    pairs: list[ScorePair] = Field(min_length=1, description="(query, document) pairs to score.")


class Score(BaseModel):
    object: Literal["score"] = "score"
    index: int
    score: float = Field(description="MaxSim: the sum over query tokens of the best match.")


class ScoreList(BaseModel):
    object: Literal["list"] = "list"
    data: list[Score]
    model: str
    usage: Usage

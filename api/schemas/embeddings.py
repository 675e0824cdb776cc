"""OpenAI-compatible embedding bodies, plus the ``input_type`` and ``truncate`` extensions."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, field_validator

Text = Annotated[str, Field(min_length=1)]


class EmbeddingCreate(BaseModel):
    input: Text | list[Text] = Field(
        description="A text or a list of texts; token-id arrays are refused (422)."
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
    truncate: bool = Field(
        False,
        description="Extension: cut inputs longer than the model's maximum tokens instead of "
        "refusing them with 413.",
    )

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_ids(cls, value: Any) -> Any:
        if isinstance(value, list) and any(isinstance(v, int | list) for v in value):
            raise ValueError("token-id arrays are not supported; send text (a string or strings)")
        return value

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else self.input


class Embedding(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str = Field(description="Floats, or base64 of float32 bytes.")


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

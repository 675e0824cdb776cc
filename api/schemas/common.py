"""Shapes shared by several routes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorDetail(BaseModel):
    code: str
    message: str
    param: str | None = None
    type: str


class ErrorBody(BaseModel):
    error: ErrorDetail


ERROR_RESPONSES = {code: {"model": ErrorBody} for code in (404, 409, 413, 422)}


MAX_OFFSET = 2**31 - 1  # keeps paging parameters inside every database integer type

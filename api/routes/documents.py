"""/v1/documents: upload raw documents (files or archives); they are chunked with the target
model's tokenizer into a corpus-only dataset, whose ``stats.ingest`` is the ingest report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, UploadFile, status
from fastapi.responses import JSONResponse

from api.deps import GuardDep, IdempotencyKey, SessionDep, SettingsDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.datasets import DatasetRead
from api.security import User
from api.uploads import dataset_from_upload
from core.ingest import SUFFIXES, ChunkSpec
from core.jobs.common import Submission, check_model
from core.names import Name
from core.safe_values import SafeText
from core.services import documents
from core.store.tables import DatasetRow

router = APIRouter(prefix="/v1/documents", tags=["documents"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
async def upload_documents(
    session: SessionDep,
    settings: SettingsDep,
    principal: User,
    guard_for: GuardDep,
    files: Annotated[
        list[UploadFile],
        File(
            description=f"Documents ({' '.join(SUFFIXES)}) or archives of them "
            "(.zip, .tar, .tar.gz)."
        ),
    ],
    name: Annotated[Name, Form()] = "documents",
    model: Annotated[
        SafeText,
        Form(max_length=300, description="The target model: its tokenizer sizes the chunks."),
    ] = "sentence-transformers/all-MiniLM-L6-v2",
    max_tokens: Annotated[
        int | None,
        Form(
            ge=16,
            le=32768,
            description="Tokens per chunk (default: the model's max sequence length).",
        ),
    ] = None,
    overlap_tokens: Annotated[int, Form(ge=0, le=4096)] = 20,
    idempotency_key: IdempotencyKey = None,  # documents the header; GuardDep reads it
) -> JSONResponse:
    """Read, chunk and store the documents; files that cannot be read are listed in
    ``stats.ingest.skipped`` with their reason (422 ``no_documents`` when none can)."""
    spec = ChunkSpec(max_tokens, overlap_tokens)

    def ingest(staging: Path) -> DatasetRow:
        location = check_model(session, model, Submission(principal.project_id))
        chunker = documents.chunker_for(settings, location, spec, allow_paths=location != model)
        return documents.ingest_upload(
            session,
            settings=settings,
            staging=staging,
            project_id=principal.project_id,
            name=name,
            chunker=chunker,
        )

    return await dataset_from_upload(
        files,
        ingest,
        session=session,
        settings=settings,
        guard_for=guard_for,
        parts=(name, model, max_tokens, overlap_tokens),
    )

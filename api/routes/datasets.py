"""/v1/datasets: upload (validated), list, read, delete."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, Response, UploadFile, status

from api.deps import DatasetDep, SessionDep, SettingsDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.datasets import DatasetPage, DatasetRead
from core.catalog import datasets as catalog
from core.catalog.uploads import extract_archive, is_archive, safe_relative_path
from core.errors import TooLarge
from core.settings import Settings
from core.store import repos

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)
CHUNK = 1 << 20


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
async def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    response: Response,
    files: Annotated[
        list[UploadFile],
        File(
            description="One dataset file, the files of a BEIR "
            "folder (names like qrels/test.tsv), or an archive."
        ),
    ],
    name: Annotated[str | None, Form(max_length=200)] = None,
    format: Annotated[str | None, Form(description="Force a format; default: detect.")] = None,
    split: Annotated[str, Form(max_length=40)] = "train",
) -> DatasetRead:
    """Store the upload, validate it (422 names file, line and field), describe it."""
    staging = catalog.staging_dir(settings)
    try:
        await _receive(files, staging, settings)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    row = catalog.register_dataset(
        session, settings=settings, staging=staging, name=name, fmt=format, split=split
    )
    response.headers["Location"] = f"/v1/datasets/{row.id}"
    return DatasetRead.model_validate(row)


async def _receive(files: list[UploadFile], staging: Path, settings: Settings) -> None:
    budget = settings.max_upload_bytes
    for upload in files:
        relative = safe_relative_path(upload.filename or "upload")
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                budget -= len(chunk)
                if budget < 0:
                    raise TooLarge(
                        f"upload exceeds {settings.max_upload_bytes} bytes", param="files"
                    )
                out.write(chunk)
        if is_archive(relative.name):
            extract_archive(target, staging / "extracted")
            target.unlink()


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> DatasetPage:
    rows, total = repos.list_datasets(session, limit=limit, offset=offset)
    return DatasetPage(
        items=[DatasetRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(dataset: DatasetDep) -> DatasetRead:
    return DatasetRead.model_validate(dataset)


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset: DatasetDep, session: SessionDep, settings: SettingsDep) -> None:
    """Delete a dataset and its files (409 while a queued or running job uses it)."""
    catalog.delete_dataset(session, settings=settings, dataset_id=dataset.id)

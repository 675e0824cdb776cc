"""Uploads that become a dataset: the files streamed to a staging folder, a retry with the
same ``Idempotency-Key`` answered from the first response, else the dataset stored once."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable
from pathlib import Path

from fastapi import UploadFile, status
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.deps import replayed
from api.schemas.datasets import DatasetRead
from core.errors import TooLarge
from core.services import datasets as catalog
from core.services.idempotency import Idempotency
from core.services.uploads import extract_archive, is_archive, safe_relative_path
from core.settings import Settings
from core.store.tables import DatasetRow

CHUNK = 1 << 20
Store = Callable[[Path], DatasetRow]
"""Stores the upload in a staging folder as a dataset row (not yet committed); it runs in the
thread pool, so validating, loading a tokenizer or chunking never stalls the event loop."""


async def dataset_from_upload(
    files: list[UploadFile],
    store: Store,
    *,
    session: Session,
    settings: Settings,
    guard_for: Callable[..., Idempotency],
    parts: tuple[object, ...],
) -> JSONResponse:
    """``201`` with the dataset ``store`` made of ``files``, or the stored answer of an earlier
    request with this key and the same files and ``parts``; the staging folder is removed
    either way, and the key is released when storing fails."""
    staging = catalog.staging_dir(settings)
    try:
        digest = await receive_files(files, staging, settings)
        guard = guard_for(digest, *parts)
        stored = guard.replay()
        if stored is not None:
            return replayed(stored)
        try:
            row = await run_in_threadpool(store, staging)
            session.commit()
        except BaseException:
            guard.release()
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    body = DatasetRead.model_validate(row).model_dump(mode="json")
    headers = {"Location": f"/v1/datasets/{row.id}"}
    guard.remember(status.HTTP_201_CREATED, body, headers)
    return JSONResponse(body, status.HTTP_201_CREATED, headers=headers)


async def receive_files(files: list[UploadFile], staging: Path, settings: Settings) -> str:
    """Stream the parts to ``staging`` within the size cap; returns a digest of them."""
    budget = settings.max_upload_bytes
    digest = hashlib.sha256()
    for upload in files:
        relative = safe_relative_path(upload.filename or "upload")
        digest.update(relative.as_posix().encode() + b"\0")
        target = staging / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            while chunk := await upload.read(CHUNK):
                budget -= len(chunk)
                if budget < 0:
                    raise TooLarge(
                        f"upload exceeds {settings.max_upload_bytes} bytes", param="files"
                    )
                digest.update(chunk)
                out.write(chunk)
        if is_archive(relative.name):
            await run_in_threadpool(extract_archive, target, staging / "extracted")
            target.unlink()
    return digest.hexdigest()

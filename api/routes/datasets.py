"""/v1/datasets: upload (validated), list, read, delete."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, Form, Query, UploadFile, status
from fastapi.responses import JSONResponse

from api.deps import DatasetDep, GuardDep, IdempotencyKey, SessionDep, SettingsDep
from api.schemas.common import ERROR_RESPONSES, MAX_OFFSET
from api.schemas.datasets import DatasetCorrections, DatasetPage, DatasetRead
from api.security import User
from api.uploads import dataset_from_upload
from core.datasets.corrections import Correction
from core.datasets.options import ReadOptions, parse_columns
from core.names import Name
from core.safe_values import SafeText
from core.services import datasets as catalog
from core.store import repos
from core.store.tables import DatasetRow

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=ERROR_RESPONSES)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=DatasetRead)
async def upload_dataset(
    session: SessionDep,
    settings: SettingsDep,
    principal: User,
    guard_for: GuardDep,
    files: Annotated[
        list[UploadFile],
        File(
            description="One dataset file, the files of a BEIR folder (names like "
            "qrels/test.tsv), or an archive (.zip, .tar, .tar.gz)."
        ),
    ],
    name: Annotated[Name | None, Form()] = None,
    format: Annotated[
        SafeText | None, Form(max_length=40, description="Force a format; default: detect.")
    ] = None,
    split: Annotated[Name, Form(description="The split of one-split formats.")] = "train",
    columns: Annotated[
        SafeText | None,
        Form(max_length=1000, description="Map fields to columns: query=question,positive=answer"),
    ] = None,
    drop_empty: Annotated[
        bool, Form(description="Drop empty texts and the judgments pointing at them (counted).")
    ] = False,
    tsv_quotes: Annotated[bool, Form(description='Treat " in TSV files as CSV quoting.')] = False,
    model: Annotated[
        SafeText | None,
        Form(max_length=200, description="Also give lengths in this model's tokens."),
    ] = None,
    idempotency_key: IdempotencyKey = None,  # documents the header; GuardDep reads it
) -> JSONResponse:
    """Store the upload, validate it (422 names file, line and field), describe it; what was
    read in a particular way (unused columns, dropped rows) is in ``stats.warnings``."""
    options = ReadOptions(parse_columns(columns), drop_empty=drop_empty, tsv_quotes=tsv_quotes)

    def register(staging: Path) -> DatasetRow:
        return catalog.register_dataset(
            session,
            settings=settings,
            staging=staging,
            project_id=principal.project_id,
            name=name,
            fmt=format,
            split=split,
            options=options,
            lengths_model=model,
        )

    return await dataset_from_upload(
        files,
        register,
        session=session,
        settings=settings,
        guard_for=guard_for,
        parts=(name, format, split, options.as_dict(), model),
    )


@router.get("", response_model=DatasetPage)
def list_datasets(
    session: SessionDep,
    caller: User,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> DatasetPage:
    """The datasets of the caller's project, newest first."""
    rows, total = repos.list_datasets(
        session, project_id=caller.project_id, limit=limit, offset=offset
    )
    return DatasetPage(
        items=[DatasetRead.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


@router.get("/{dataset_id}", response_model=DatasetRead)
def get_dataset(dataset: DatasetDep) -> DatasetRead:
    return DatasetRead.model_validate(dataset)


@router.post(
    "/{dataset_id}/corrections", status_code=status.HTTP_201_CREATED, response_model=DatasetRead
)
def correct_dataset(
    body: DatasetCorrections, dataset: DatasetDep, session: SessionDep, settings: SettingsDep
) -> JSONResponse:
    """A new dataset version: this one with the listed negatives judged relevant in
    ``split`` and no longer negatives; this dataset is left intact. 422 names each
    correction that does not apply (``not_a_negative``, ``unknown_doc_id``, ...)."""
    row = catalog.correct_dataset(
        session,
        settings=settings,
        row=dataset,
        corrections=[Correction(c.query_id, c.doc_id) for c in body.corrections],
        split=body.split,
        name=body.name,
    )
    read = DatasetRead.model_validate(row).model_dump(mode="json")
    session.commit()
    return JSONResponse(
        read, status.HTTP_201_CREATED, headers={"Location": f"/v1/datasets/{row.id}"}
    )


@router.delete("/{dataset_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_dataset(dataset: DatasetDep, session: SessionDep, settings: SettingsDep) -> None:
    """Delete a dataset and its files (409 while a queued or running job uses it)."""
    catalog.delete_dataset(session, settings=settings, dataset_id=dataset.id)

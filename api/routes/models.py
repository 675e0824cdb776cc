"""/v1/models: base models available offline and the caller's project's fine-tuned models."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import ModelDep, SessionDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.models import ModelList, ModelRead
from api.security import Inference, User
from core.catalog.models import base_models, delete_model
from core.store import repos
from core.store.tables import ModelRow

router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)


def _read(row: ModelRow) -> ModelRead:
    return ModelRead(
        id=row.id,
        kind="finetuned",
        reference=row.id,
        method=row.method,
        base_model=row.base_model,
        job_id=row.job_id,
        dataset_id=row.dataset_id,
        metrics=row.metrics,
        created_at=row.created_at,
    )


@router.get("", response_model=ModelList)
def list_models(session: SessionDep, caller: Inference) -> ModelList:
    base = [ModelRead(id=m.id, kind="base", reference=m.id) for m in base_models()]
    tuned = repos.list_rows(session, ModelRow, project_id=caller.project_id)
    return ModelList(items=base + [_read(r) for r in tuned])


@router.get("/{model_id}", response_model=ModelRead)
def get_model(model: ModelDep) -> ModelRead:
    return _read(model)


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_model(model: ModelDep, session: SessionDep, _: User) -> None:
    """Delete a fine-tuned model and its files (409 while an active job uses it)."""
    delete_model(session, model_id=model.id)

"""/v1/models: base models available offline and the caller's project's fine-tuned models
(OpenAI's shapes)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, status
from markdown_it import MarkdownIt

from api.deps import ModelDep, SessionDep, SettingsDep
from api.schemas.common import ERROR_RESPONSES
from api.schemas.models import ModelCard, ModelList, ModelRead
from api.security import Inference, User
from core.errors import NotFound
from core.services.models import PackagedModel, base_models, delete_model, quantization_of
from core.store import repos
from core.store.tables import ModelRow

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")
router = APIRouter(prefix="/v1/models", tags=["models"], responses=ERROR_RESPONSES)


def _read(row: ModelRow) -> ModelRead:
    return ModelRead(
        id=row.id,
        created=int(row.created_at.timestamp()),
        owned_by="embedtune",
        kind="reranker" if row.kind == "reranker" else "finetuned",
        reference=row.id,
        method=row.method,
        base_model=row.base_model,
        job_id=row.job_id,
        dataset_id=row.dataset_id,
        metrics=row.metrics,
        created_at=row.created_at,
    )


def _base(model: PackagedModel) -> ModelRead:
    owner = model.id.split("/")[0] if "/" in model.id else "embedtune"
    created = int(Path(model.path).stat().st_mtime)
    return ModelRead(id=model.id, created=created, owned_by=owner, kind="base", reference=model.id)


@router.get("", response_model=ModelList)
def list_models(session: SessionDep, caller: Inference) -> ModelList:
    base = [_base(m) for m in base_models()]
    tuned = repos.list_rows(session, ModelRow, project_id=caller.project_id)
    return ModelList(data=base + [_read(r) for r in tuned])


@router.get("/{model_id}/card", response_model=ModelCard)
def model_card(model: ModelDep) -> ModelCard:
    """A fine-tuned model's card (its README.md), as Markdown and as HTML (raw HTML in the
    Markdown is escaped, never passed through)."""
    path = Path(model.path) / "README.md"
    if not path.is_file():
        raise NotFound(f"model '{model.id}' has no model card", code="no_card", param="model_id")
    text = path.read_text("utf-8")
    return ModelCard(model_id=model.id, markdown=text, html=_MARKDOWN.render(text))


@router.get("/{model_id:path}", response_model=ModelRead)
def get_model(
    model_id: str, session: SessionDep, caller: Inference, settings: SettingsDep
) -> ModelRead:
    """A packaged base model by its name (``/`` included) or one of the project's fine-tuned
    models by id, with its int8 measurement when a quantize job made one."""
    base = next((m for m in base_models() if m.id == model_id), None)
    if base is not None:
        read, path = _base(base), base.path
    else:
        row = repos.get_or_404(session, ModelRow, model_id, "model", project_id=caller.project_id)
        read, path = _read(row), row.path
    quality = quantization_of(settings, Path(path))
    return read.model_copy(update={"quantization": quality})


@router.delete("/{model_id}", status_code=status.HTTP_204_NO_CONTENT)
def remove_model(model: ModelDep, session: SessionDep, _: User) -> None:
    """Delete a fine-tuned model and its files (409 while an active job uses it)."""
    delete_model(session, model_id=model.id)

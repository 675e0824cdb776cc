"""Models the platform knows: packaged base models and the ones its jobs produced."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.errors import Conflict
from core.models.embedder import Embedder, load_embedder
from core.models.resolve import PACKAGED_MODELS, packaged_dir
from core.settings import Settings
from core.store import repos
from core.store.db import after_commit
from core.store.tables import ModelRow

if TYPE_CHECKING:
    from core.reranking.reranker import Reranker


@dataclass(frozen=True)
class PackagedModel:
    id: str
    path: str


def base_models() -> list[PackagedModel]:
    """Base models whose weights ship in an installed package (usable with no hub)."""
    found = ((ref, packaged_dir(ref)) for ref in PACKAGED_MODELS)
    return [PackagedModel(ref, str(path)) for ref, path in found if path is not None]


def model_location(session: Session, ref: str, *, project_id: str | None = None) -> str:
    """What to load for ``ref``: a tuned model's directory, else the reference itself. With
    ``project_id``, another project's tuned model is not one: its id is a mere reference."""
    row = session.get(ModelRow, ref)
    if row is None or project_id not in (None, row.project_id):
        return ref
    return row.path


def embedder_for(
    settings: Settings, location: str, *, allow_paths: bool, batch_size: int = 64, **overrides: Any
) -> Embedder:
    """The model at ``location`` loaded as this deployment loads models (its models
    directory, device and remote-code policy), with per-use ``overrides`` (``max_seq_length``,
    instructions). The one place jobs, serving and the CLI load an embedder."""
    return load_embedder(
        location,
        models_dir=settings.models_dir,
        device=settings.device,
        trust_remote_code=settings.trust_remote_code,
        batch_size=batch_size,
        allow_paths=allow_paths,
        **overrides,
    )


def delete_model(session: Session, *, model_id: str) -> None:
    row = repos.get_or_404(session, ModelRow, model_id, "model")
    active = [
        job.id
        for job in repos.active_jobs(session)
        if model_id in (job.spec.get("model"), job.spec.get("base_model"))
    ]
    if active:
        raise Conflict(
            f"model '{model_id}' is used by active jobs: {', '.join(active)}",
            code="model_in_use",
            param="id",
        )
    session.delete(row)
    session.flush()
    after_commit(session, lambda: shutil.rmtree(Path(row.path), ignore_errors=True))


def reranker_for(
    settings: Settings, location: str, *, allow_paths: bool, batch_size: int = 32
) -> Reranker:
    """The cross-encoder at ``location`` loaded as this deployment loads models; the one place
    jobs, serving and the CLI load a reranker."""
    from core.reranking.reranker import load_reranker

    return load_reranker(
        location,
        models_dir=settings.models_dir,
        allow_paths=allow_paths,
        device=settings.device,
        trust_remote_code=settings.trust_remote_code,
        batch_size=batch_size,
    )

"""Models the platform knows: packaged base models and the ones its jobs produced."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.errors import Conflict, InvalidInput
from core.models.embedder import Embedder, load_embedder
from core.models.remote import RemoteEmbedder, RemoteEndpoint, is_remote
from core.models.resolve import PACKAGED_MODELS, packaged_dir
from core.services.aliases import refuse_if_aliased
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
    instructions). The one place jobs, serving and the CLI load an embedder.

    ``remote:<name>`` is the operator's embeddings endpoint (``EMBEDTUNE_EMBEDDINGS_API_*``)."""
    if is_remote(location):
        return remote_embedder(settings, location)  # type: ignore[return-value]
    return load_embedder(
        location,
        models_dir=settings.models_dir,
        device=settings.device,
        trust_remote_code=settings.trust_remote_code,
        batch_size=batch_size,
        allow_paths=allow_paths,
        **overrides,
    )


def quantization_of(settings: Settings, model_dir: Path) -> dict[str, Any] | None:
    """The int8 measurement of the model in ``model_dir`` (``core.serving.quantize``), if any."""
    from core.models.loading import fingerprint
    from core.serving.quantize import load_quality

    if not model_dir.is_dir():
        return None
    quality = load_quality(settings.onnx_dir, fingerprint(model_dir))
    return quality.to_dict() if quality is not None else None


def remote_embedder(settings: Settings, ref: str) -> RemoteEmbedder:
    """``remote:<name>`` on the operator's endpoint; 422 when none is configured."""
    if not settings.embeddings_api_base_url:
        raise InvalidInput(
            f"'{ref[:80]}' needs an embeddings endpoint (EMBEDTUNE_EMBEDDINGS_API_BASE_URL)",
            code="remote_not_configured",
            param="model",
        )
    endpoint = RemoteEndpoint(
        base_url=settings.embeddings_api_base_url,
        api_key=settings.embeddings_api_key.get_secret_value(),
        batch_size=settings.embeddings_api_batch_size,
        max_retries=settings.embeddings_api_max_retries,
        timeout=settings.embeddings_api_timeout_seconds,
    )
    return RemoteEmbedder(ref, endpoint)


def delete_model(session: Session, *, model_id: str) -> None:
    """Delete a tuned model and its files; refused while a job or an alias uses it."""
    row = repos.get_or_404(session, ModelRow, model_id, "model")
    refuse_if_aliased(session, model_id=model_id)
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

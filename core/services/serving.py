"""The engine wired to the platform: settings, models by reference, indexes by their rows."""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session, sessionmaker

from core.errors import InvalidInput
from core.indexing.stored import open_index
from core.models.embedder import Embedder
from core.models.multi_vector import MultiVectorEmbedder
from core.models.resolve import model_not_found
from core.reranking.reranker import Reranker, is_reranker_dir
from core.services import datasets as dataset_catalog
from core.services.models import embedder_for, model_location, reranker_for
from core.serving.engine import Engine
from core.serving.search import ServedIndex
from core.serving.spec import ModelKey, ServeSpec
from core.settings import Settings
from core.store import repos
from core.store.tables import DatasetRow, IndexRow, JobRow


def build_engine(settings: Settings, factory: sessionmaker[Session]) -> Engine:
    """An engine whose models are fine-tuned model ids or references that are not paths."""
    spec = ServeSpec(
        max_batch_size=settings.serve_max_batch_size,
        max_batch_tokens=settings.serve_max_batch_tokens,
        batch_wait_ms=settings.serve_batch_wait_ms,
        max_inputs=settings.serve_max_inputs,
        max_input_chars=settings.serve_max_input_chars,
        max_queue=settings.serve_max_queue,
        model_memory_bytes=settings.serve_model_memory_mb << 20,
        index_memory_bytes=settings.serve_index_memory_mb << 20,
        onnx_dir=settings.onnx_dir if settings.serve_onnx else None,
        truncate=settings.serve_truncate,
        truncate_models=settings.serve_truncate_models,
        int8_models=frozenset(settings.serve_int8_models),
        half_models=settings.serve_half_models,
    )

    def load_model(key: ModelKey) -> Embedder | MultiVectorEmbedder:
        with factory() as session:
            location = model_location(session, key.ref)
        return embedder_for(
            settings,
            location,
            allow_paths=location != key.ref,  # a client's reference is never a path
            batch_size=spec.max_batch_size,
            **key.overrides,
        )

    def load_reranker(key: ModelKey) -> Reranker:
        with factory() as session:
            location = model_location(session, key.ref)
        reranker = reranker_for(
            settings, location, allow_paths=location != key.ref, batch_size=spec.max_batch_size
        )
        if not is_reranker_dir(reranker.model.path):
            raise InvalidInput(
                f"model '{key.ref}' is not a reranker (a sequence-classification model); "
                "fine-tune one with a rerank_finetune job",
                code="not_a_reranker",
                param="model",
            )
        return reranker

    return Engine(spec, load_model, load_reranker)


class ModelOwners:
    """Which project each tuned model id belongs to, so that a key is served only its own
    project's tuned models; other references (base models, hub ids) serve every project.
    A model never changes project and ids are never reused, so answers are cached (at most
    ``size``): a busy client costs no database round trip per request."""

    def __init__(self, factory: sessionmaker[Session], size: int = 4096) -> None:
        self.factory, self.size = factory, size
        self._owners: dict[str, str | None] = {}

    async def check(self, ref: str, project_id: str) -> None:
        """``NotFound``, the very error of an unknown model, for another project's model."""
        if ref not in self._owners:
            owner = await asyncio.to_thread(self._lookup, ref)
            if len(self._owners) >= self.size:
                self._owners.pop(next(iter(self._owners)))  # the oldest answer
            self._owners[ref] = owner
        if self._owners[ref] not in (None, project_id):
            raise model_not_found(ref)

    def _lookup(self, ref: str) -> str | None:
        with self.factory() as session:
            return repos.model_project(session, model_id=ref)


def load_index(factory: sessionmaker[Session], row: IndexRow) -> ServedIndex:
    """The index of ``row`` with its documents; queries get the encoding options of its job."""
    with factory() as session:
        dataset = repos.get_or_404(session, DatasetRow, row.dataset_id, "dataset")
        job = session.get(JobRow, row.job_id) if row.job_id else None
    options = job.spec if job is not None else {}
    model = ModelKey(
        row.model,
        max_seq_length=options.get("max_seq_length"),
        query_instruction=options.get("query_instruction"),
        document_instruction=options.get("document_instruction"),
    )
    docs = dataset_catalog.load(dataset).corpus
    index = open_index(row.path, row.kind)
    return ServedIndex(index, docs, model, row.model_fingerprint)

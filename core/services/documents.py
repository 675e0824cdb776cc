"""Raw documents as the platform handles them: a chunker for a model reference, ingesting an
upload into a stored corpus, and synthesis wired to the deployment's model and LLM settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from core.datasets.io import save_dataset
from core.datasets.model import Qrels, Query, RetrievalDataset
from core.errors import InvalidInput
from core.ingest import Chunker, ChunkSpec, files_under, ingest_files, model_tokens
from core.models.cache import EmbeddingCache
from core.models.embedder import Embedder
from core.models.resolve import resolve_model
from core.names import child_path
from core.services import datasets as catalog
from core.settings import Settings
from core.store.tables import DatasetRow
from core.synthesis.llm import AnswerLog, LlmEndpoint, LlmGenerator, LlmUsage
from core.synthesis.pipeline import SynthesisReport, chunks_to_use, synthesize
from core.synthesis.prompts import TEMPLATES, language_of
from core.synthesis.roundtrip import base_model_ranker
from core.synthesis.spec import SynthesisSpec

StageProgress = Callable[[str, int, int], None]


def chunker_for(
    settings: Settings, location: str, spec: ChunkSpec, *, allow_paths: bool
) -> Chunker:
    """A chunker with the tokenizer and limits of the model at ``location``."""
    resolved = resolve_model(location, models_dir=settings.models_dir, allow_paths=allow_paths)
    return Chunker(model_tokens(resolved), spec)


def ingest_upload(
    session: Session,
    *,
    settings: Settings,
    staging: Path,
    project_id: str,
    name: str,
    chunker: Chunker,
) -> DatasetRow:
    """Ingest the raw documents in ``staging`` into a stored corpus-only dataset; its stats
    hold the ingest report (``stats.ingest``). Nothing readable: 422 ``no_documents``."""
    result = ingest_files(files_under(staging), chunker, name=name)
    report = result.report.as_dict()
    if not result.dataset.corpus:
        reasons = "; ".join(f"{s['file']}: {s['code']}" for s in report["skipped"][:10])
        raise InvalidInput(
            f"no document could be read ({reasons or 'no files'})",
            code="no_documents",
            param="files",
        )
    corpus_dir = catalog.staging_dir(settings)
    save_dataset(result.dataset, child_path(corpus_dir, name), "beir")
    row = catalog.register_dataset(
        session,
        settings=settings,
        staging=corpus_dir,
        project_id=project_id,
        name=name,
        fmt="beir",
    )
    row.stats = {**row.stats, "ingest": report}
    return row


def llm_endpoint(settings: Settings) -> LlmEndpoint | None:
    """The operator's chat-completions endpoint, or None when none is configured."""
    if not settings.llm_base_url or not settings.llm_model:
        return None
    return LlmEndpoint(
        base_url=settings.llm_base_url,
        model=settings.llm_model,
        api_key=settings.llm_api_key.get_secret_value(),
        timeout=settings.llm_timeout_seconds,
        max_retries=settings.llm_max_retries,
        concurrency=settings.llm_concurrency,
    )


def run_synthesis(
    settings: Settings,
    corpus: RetrievalDataset,
    spec: SynthesisSpec,
    *,
    embedder: Embedder | None,
    answers: Path,
    progress: StageProgress | None = None,
    check_stop: Callable[[], None] = lambda: None,
    on_usage: Callable[[int, int, LlmUsage], None] | None = None,
    user_test: tuple[dict[str, Query], Qrels] | None = None,
) -> tuple[RetrievalDataset, SynthesisReport]:
    """Synthesize with the deployment's LLM (when ``llm`` is a generator; its answers are
    kept in ``answers`` so that a second run asks nothing twice) and ``embedder`` as the base
    model of the round-trip filter."""
    llm = None
    if "llm" in spec.generators and (endpoint := llm_endpoint(settings)) is not None:
        texts = [d.text for d in chunks_to_use(corpus.corpus, spec)]
        language = language_of(texts) if spec.language == "auto" else spec.language
        llm = LlmGenerator(
            endpoint,
            template=spec.prompt_template or TEMPLATES[language],
            queries_per_chunk=spec.queries_per_chunk,
            log=AnswerLog(answers),
            max_tokens=spec.max_tokens,
            check_stop=check_stop,
            on_answer=on_usage
            or ((lambda d, t, _: progress("ask_llm", d, t)) if progress else None),
        )
    started, ranker = time.monotonic(), None
    if spec.round_trip_k > 0 and embedder is not None:
        ranker = base_model_ranker(
            embedder,
            corpus.corpus,
            spec.round_trip_k,
            cache=EmbeddingCache(settings.cache_dir),
            progress=progress,
        )
    ds, report = synthesize(corpus, spec, ranker=ranker, llm=llm, user_test=user_test)
    report.seconds = time.monotonic() - started  # with the round trip's corpus encode
    if llm is not None:
        report.llm = {**llm.usage.as_dict(), "model": llm.endpoint.model}
    return ds, report

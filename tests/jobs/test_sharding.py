"""Sharded encoding on real Postgres: an index job over a large corpus plans encode shards,
waits for them without holding a worker, and then finds every vector in the cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.evaluation.evaluator import cache_key
from core.indexing.faiss_index import VectorIndex
from core.jobs.kinds.encode import shard_slice
from core.jobs.kinds.index import IndexJob
from core.jobs.runner import run_job
from core.jobs.service import cancel_job
from core.models.cache import EmbeddingCache
from core.services.datasets import load
from core.services.models import embedder_for
from core.settings import Settings
from core.store.tables import DatasetRow, JobEventRow
from tests.conftest import SAMPLE
from tests.jobs.test_lifecycle import job, submit

DOCUMENTS = sum(1 for _ in (SAMPLE / "corpus.jsonl").open())


def index_request(sample_id: str, model: Path, **spec: object) -> IndexJob:
    return IndexJob(
        type="index", spec={"dataset_id": sample_id, "model": str(model), "batch_size": 64, **spec}
    )


def run(factory, settings: Settings, job_id: str) -> tuple[str, list]:
    released: list = []
    outcome = run_job(
        job_id,
        factory=factory,
        settings=settings,
        worker="w",
        enqueue=lambda j, q: released.append((j, q)),
    )
    return outcome, released


def test_shard_slices_cover_the_corpus_once() -> None:
    for documents, shards in ((2000, 3), (10, 4), (7, 7), (5, 1)):
        rows = [
            r for s in range(shards) for r in range(documents)[shard_slice(documents, s, shards)]
        ]
        assert rows == list(range(documents))


def test_a_large_corpus_is_encoded_by_shard_jobs_that_the_index_job_waits_for(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    sent: list = []
    index_id = submit(factory, index_request(sample_id, tiny_model_dir, shard_documents=700), sent)
    shards = job(factory, index_id).result["shards"]
    assert len(shards) == 3 and sorted(sent) == sorted((s, "gpu") for s in shards)
    assert job(factory, index_id).enqueued_at is None  # handed to no broker while it waits

    # A worker lost while encoding shard 1 had written its first chunk to the cache.
    spec = job(factory, shards[1]).spec
    embedder = embedder_for(settings, str(tiny_model_dir), allow_paths=True, batch_size=64)
    with factory() as session:
        ds = load(session.get(DatasetRow, sample_id))
    doc_ids = list(ds.corpus)[shard_slice(len(ds.corpus), spec["shard"], spec["shards"])]
    texts = [ds.corpus[d].full_text for d in doc_ids]
    EmbeddingCache(settings.cache_dir).fill(
        cache_key(embedder, "document"),
        texts[:100],
        lambda batch: embedder.encode(batch, "document"),
        chunk_size=100,
    )

    outcomes = [run(factory, settings, s) for s in shards]
    assert [o for o, _ in outcomes] == ["succeeded"] * 3
    assert [r for _, r in outcomes] == [[], [], [(index_id, "cpu")]]  # the last one frees it
    results = [job(factory, s).result for s in shards]
    assert sum(r["documents"] for r in results) == DOCUMENTS
    assert (results[1]["cached"], results[1]["encoded"]) == (100, len(texts) - 100)
    assert results[0]["cached"] == results[2]["cached"] == 0

    assert run(factory, settings, index_id)[0] == "succeeded"
    result = job(factory, index_id).result
    assert (result["size"], result["kind"], result["recall_at_10"]) == (DOCUMENTS, "flat", 1.0)
    with factory() as session:
        log = [e.message for e in session.query(JobEventRow).filter_by(job_id=index_id)]
    assert f"{DOCUMENTS} of {DOCUMENTS} document vectors came from the cache" in log
    folder = settings.jobs_dir / index_id
    assert not (folder / "vectors.npy").exists()
    index = VectorIndex.load(folder / "index")
    assert index.ids == list(ds.corpus)
    hits, _ = index.search(embedder.encode(texts[:5], "document"), 1)
    assert [h[0] for h in hits] == doc_ids[:5]


def test_a_small_corpus_is_encoded_by_the_index_job_itself(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    sent: list = []
    index_id = submit(factory, index_request(sample_id, tiny_model_dir), sent)
    assert sent == [(index_id, "cpu")] and "shards" not in (job(factory, index_id).result or {})


def test_a_cancelled_shard_cancels_the_index_job(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    index_id = submit(factory, index_request(sample_id, tiny_model_dir, shard_documents=1000))
    shards = job(factory, index_id).result["shards"]
    cancel_job(factory, job_id=shards[0], enqueue=lambda *_: None)
    row = job(factory, index_id)
    assert (row.status, row.error_code) == ("cancelled", "dependency_cancelled")


def test_too_many_shards_are_refused_at_submission(
    factory, sample_id: str, tiny_model_dir: Path
) -> None:
    with pytest.raises(InvalidInput) as refused:
        submit(factory, index_request(sample_id, tiny_model_dir, shard_documents=1))  # 2,000 shards
    assert (refused.value.code, refused.value.param) == ("too_many_shards", "shard_documents")

"""How much a compare of base, adapter, nudge-n and nudge-m encodes, and its wall time.

Runs the compare job and its children in this process, on SQLite in a fresh data directory,
in dependency order: SciFact as the dataset, cmrc2018 as the forgetting set (each cut to about
``--max-docs`` documents judged by its splits, and the judgments of those). Prints the texts the
embedder encoded (``embedtune_job_texts_encoded_total``: the same counter before and after
the side-keyed cache), the documents among them, each job's ``encodes`` where the code
reports them, and the wall time. Run it from another checkout to measure that code.

    PYTHONPATH=. python bench/compare_encodes.py [--max-docs 300]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from core import metrics
from core.datasets.io import load_dataset, save_dataset
from core.datasets.model import RetrievalDataset
from core.jobs.registry import JobRequest
from core.jobs.runner import run_job
from core.jobs.service import submit_job
from core.services.datasets import register_dataset, staging_dir
from core.settings import Settings
from core.store.db import make_engine, make_session_factory, transaction, upgrade
from core.store.tables import JobRow

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
METHODS = ["base", "adapter", "nudge-n", "nudge-m"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-docs", type=int, default=300)
    parser.add_argument("--adapter-epochs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp))
        upgrade(settings.db_url)
        factory = make_session_factory(make_engine(settings.db_url))
        ids, docs = {}, 0
        for name in ("scifact", "cmrc2018"):
            ds = _small(load_dataset(SHARED / name), args.max_docs)
            docs += len(ds.corpus)
            ids[name] = _store(factory, settings, ds, name)
        spec = {
            "dataset_id": ids["scifact"],
            "base_model": MODEL,
            "forgetting_dataset_id": ids["cmrc2018"],
            "methods": METHODS,
            "params": {"adapter_epochs": args.adapter_epochs},
        }
        request = _request({"type": "compare", "spec": spec})
        job = submit_job(factory, request, enqueue=lambda *_: None)
        with factory() as session:
            order = [c["job_id"] for c in session.get(JobRow, job.id).result["children"]]
        before = metrics.JOB_TEXTS_ENCODED._value.get()
        t0 = time.perf_counter()
        for job_id in [*order, job.id]:
            outcome = run_job(
                job_id, factory=factory, settings=settings, worker="bench", enqueue=lambda *_: None
            )
            if outcome != "succeeded":
                with factory() as session:
                    row = session.get(JobRow, job_id)
                    raise SystemExit(f"{row.type} {outcome}: {row.error_code} {row.error_message}")
        wall = time.perf_counter() - t0
        texts = metrics.JOB_TEXTS_ENCODED._value.get() - before
        with factory() as session:
            rows = [session.get(JobRow, j) for j in [*order, job.id]]
            report = [(r.type, (r.result or {}).get("encodes")) for r in rows]
    print(f"compare of {', '.join(METHODS)}: {docs} documents in the two corpora, model {MODEL}")
    print(f"wall seconds {wall:.1f}; texts encoded {texts:.0f}")
    for kind, encodes in report:
        print(f"  {kind:<10} {encodes if encodes is not None else '(not reported)'}")


def _small(ds: RetrievalDataset, n: int) -> RetrievalDataset:
    """About ``n`` documents: the first judged by each split in turn, with the judgments (and
    queries) that point at them."""
    keep: dict[str, None] = {}
    for judged in ds.qrels.values():
        wanted = {d for r in judged.values() for d, g in r.items() if g > 0}
        keep.update(dict.fromkeys([d for d in ds.corpus if d in wanted][: n // len(ds.qrels)]))
    corpus = {d: ds.corpus[d] for d in ds.corpus if d in keep}
    qrels = {}
    for split, judged in ds.qrels.items():
        kept = {q: {d: g for d, g in r.items() if d in corpus} for q, r in judged.items()}
        qrels[split] = {q: r for q, r in kept.items() if any(g > 0 for g in r.values())}
    asked = {q for judged in qrels.values() for q in judged}
    queries = {q: v for q, v in ds.queries.items() if q in asked}
    return replace(ds, corpus=corpus, queries=queries, qrels=qrels, negatives={})


def _store(factory, settings: Settings, ds, name: str) -> str:
    staging = staging_dir(settings)
    save_dataset(ds, staging / name, "beir")
    with transaction(factory) as session:
        return register_dataset(session, settings=settings, staging=staging, name=name).id


def _request(body: dict):
    from pydantic import TypeAdapter

    return TypeAdapter(JobRequest).validate_python(body)


if __name__ == "__main__":
    main()

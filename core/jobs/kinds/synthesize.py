"""synthesize: queries for a corpus (offline generators or the operator's LLM), filtered and
split by source document; the result is a new dataset that mine / finetune / eval / compare
take as it is.

LLM answers are appended to the job's artifacts as they arrive (``llm_answers.jsonl``), so a
retried, resumed or reclaimed job asks nothing twice; tokens used are job metrics.
"""

from __future__ import annotations

import json
import time
from typing import Any, Literal

from pydantic import Field
from sqlalchemy.orm import Session

from core.jobs.common import (
    EncodingOptions,
    Id,
    ModelRef,
    SpecModel,
    Submission,
    check_dataset,
    check_model,
    dataset_of,
    embedder_for,
    fields_of,
    stages,
)
from core.jobs.context import JobContext
from core.names import Name
from core.services import datasets as dataset_catalog
from core.services.documents import run_synthesis
from core.store import repos
from core.store.db import transaction
from core.store.tables import JobRow
from core.synthesis.llm import LlmUsage
from core.synthesis.spec import SynthesisSpec

TYPE = "synthesize"
QUEUE = "cpu"
REPORT = "synthesis_report.json"
ANSWERS = "llm_answers.jsonl"
METRICS_EVERY_S = 1.0
SPANS = {"ask_llm": (0.02, 0.6), "encode_corpus": (0.62, 0.3), "encode_queries": (0.92, 0.05)}
SynthesisOptions = fields_of(SynthesisSpec, exclude=(), name="SynthesisOptions")


class SynthesizeJobSpec(EncodingOptions):
    dataset_id: Id
    model: ModelRef = Field(
        "sentence-transformers/all-MiniLM-L6-v2",
        description="The base model of the round-trip filter (the model you will fine-tune).",
    )
    test_split: Name | None = Field(
        "test", description="A labeled split of the dataset kept as the test split, if it has it."
    )
    options: SynthesisOptions = Field(default_factory=lambda: SynthesisOptions())


class SynthesizeJob(SpecModel):
    type: Literal["synthesize"]
    spec: SynthesizeJobSpec


def synthesis_spec(spec: SynthesizeJobSpec) -> SynthesisSpec:
    """The domain spec; values out of range raise ``InvalidInput``."""
    return SynthesisSpec(**spec.options.model_dump())


def check(session: Session, spec: SynthesizeJobSpec, sub: Submission) -> None:
    check_dataset(session, spec.dataset_id, sub)
    check_model(session, spec.model, sub)
    synthesis_spec(spec)


def plan(session: Session, job: JobRow, spec: SynthesizeJobSpec) -> list[JobRow]:
    return []


def _usage_metrics(ctx: JobContext):
    """An ``on_usage`` callback writing LLM progress and tokens, at most once a second."""
    last = 0.0

    def on_usage(done: int, total: int, usage: LlmUsage) -> None:
        nonlocal last
        ctx.stage("ask_llm", *SPANS["ask_llm"])(done, total)
        if time.monotonic() - last >= METRICS_EVERY_S or done == total:
            last = time.monotonic()
            ctx.metrics(done, _token_metrics(usage))

    return on_usage


def _token_metrics(usage: LlmUsage) -> dict[str, float]:
    return {
        "llm_prompt_tokens": usage.prompt_tokens,
        "llm_completion_tokens": usage.completion_tokens,
        "llm_tokens": usage.tokens,
        "llm_failed_chunks": usage.failed,
    }


def run(ctx: JobContext, spec: SynthesizeJobSpec) -> dict[str, Any]:
    with ctx.factory() as session:
        done = repos.dataset_from_job(session, job_id=ctx.job_id)
    if done is not None:  # a redelivered job whose dataset was already stored
        return {"dataset_id": done.id}
    domain = synthesis_spec(spec)
    corpus = dataset_of(ctx, spec.dataset_id)
    embedder = embedder_for(ctx, spec.model, spec) if domain.round_trip_k else None
    test = spec.test_split if spec.test_split in corpus.qrels else None
    ctx.progress(0.02, stage="loaded", force=True)
    ds, report = run_synthesis(
        ctx.settings,
        corpus,
        domain,
        embedder=embedder,
        answers=ctx.artifacts / ANSWERS,
        progress=stages(ctx, SPANS),
        check_stop=ctx.check_stop,
        on_usage=_usage_metrics(ctx),
        user_test=(corpus.queries, corpus.qrels[test]) if test else None,
    )
    (ctx.artifacts / REPORT).write_text(json.dumps(report.as_dict(), indent=1), "utf-8")
    ctx.log(
        f"kept {sum(len(q) for q in ds.qrels.values())} of {sum(report.candidates.values())} "
        f"candidate queries ({', '.join(f'{k} {v}' for k, v in report.splits.items())})",
        removed=report.removed,
    )
    with transaction(ctx.factory) as session:
        row = dataset_catalog.store_dataset(
            session,
            settings=ctx.settings,
            ds=ds,
            name=f"{corpus.name[:50]}-synth",
            source_job_id=ctx.job_id,
        )
        row.stats = {**row.stats, "synthesis": report.as_dict()}
        dataset_id = row.id
    return {
        "dataset_id": dataset_id,
        "splits": report.splits,
        "candidates": report.candidates,
        "removed": report.removed,
        "llm": report.llm,
        "report": REPORT,
    }


Spec, Request = SynthesizeJobSpec, SynthesizeJob  # the names every kind module has

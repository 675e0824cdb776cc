"""Running a compare job: drive each child to its end, then score what each one made.

The compare job runs its children on its own worker, in order, through the same runner as
any job; a child that another worker already took is waited for. One worker therefore
suffices, and more workers (the children are enqueued too) shorten the run.
Fine-tuned models are scored here on the test split; every model also on the dataset it was
not trained on (forgetting). A NUDGE index leaves the model as it was, so it shares its
model's forgetting figures.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from core.compare import METHODS, MethodRun, build_report, to_markdown
from core.datasets.model import RetrievalDataset
from core.errors import Conflict
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.report import EvalReport
from core.jobs.context import JobContext
from core.jobs.handlers import HEADLINE, _dataset, _embedder
from core.jobs.specs import CompareJobSpec, EncodingOptions
from core.models.cache import EmbeddingCache
from core.store import repos
from core.store.tables import DatasetRow, JobRow, as_utc

POLL_S = 1.0  # how often a job waiting on another one looks again
CHILDREN_SHARE = 0.8  # of the compare job's progress; scoring the methods takes the rest


def run_compare(ctx: JobContext, spec: CompareJobSpec) -> dict[str, Any]:
    """Run every child to its end, score what they made, and return the report."""
    with ctx.factory() as session:
        parent = repos.get_or_404(session, JobRow, ctx.job_id, "job")
        children: list[dict[str, str]] = list(parent.result.get("children", []))
        worker = parent.worker or "compare"
    for i, child in enumerate(children):
        ctx.check_stop()
        ctx.progress(CHILDREN_SHARE * i / len(children), stage=child["method"], force=True)
        drive(ctx, child["job_id"], worker)
    ctx.check_stop()
    report = _Scorer(ctx, spec).report(children)
    path = ctx.artifacts / "report.md"
    path.write_text(to_markdown(report), "utf-8")
    return {"children": children, "report": report.to_dict(), "report_path": str(path)}


def drive(ctx: JobContext, job_id: str, worker: str) -> str:
    """Run job ``job_id`` here, or wait while another worker runs it; its final state."""
    from core.jobs.runner import run_job

    while True:
        outcome = run_job(job_id, factory=ctx.factory, settings=ctx.settings, worker=worker)
        if outcome in repos.TERMINAL:
            return outcome
        ctx.check_stop()  # handed back together with this job, or cancelled
        time.sleep(POLL_S)


def finished_job(ctx: JobContext, job_id: str) -> JobRow:
    """Job ``job_id`` once it succeeded (waiting while it runs); ``Conflict`` if it did not."""
    while True:
        with ctx.factory() as session:
            job = repos.get_or_404(session, JobRow, job_id, "job")
        if job.status == "succeeded":
            return job
        if job.status in repos.TERMINAL:
            raise Conflict(
                f"job '{job_id}' {job.status}: there is no model to build on",
                code=f"source_job_{job.status}",
                param="model_from_job",
            )
        ctx.check_stop()
        time.sleep(POLL_S)


class _Scorer:
    """Test and forgetting metrics of each child's output, computed once per model."""

    def __init__(self, ctx: JobContext, spec: CompareJobSpec) -> None:
        self.ctx, self.spec = ctx, spec
        self.cache = EmbeddingCache(ctx.settings.cache_dir)
        self.ds = _dataset(ctx, spec.dataset_id)
        self.other = _dataset(ctx, spec.forgetting_dataset_id) if self.forgets else None
        self._forgetting: dict[str, dict[str, float]] = {}

    @property
    def forgets(self) -> bool:
        return self.spec.forgetting_dataset_id is not None

    def report(self, children: list[dict[str, str]]):  # -> CompareReport
        with self.ctx.factory() as session:
            jobs = {c["method"]: session.get(JobRow, c["job_id"]) for c in children}
            names = {
                d: repos.get_or_404(session, DatasetRow, d, "dataset").name
                for d in (self.spec.dataset_id, self.spec.forgetting_dataset_id)
                if d is not None
            }
        runs = []
        for i, (method, job) in enumerate(jobs.items()):
            span = (1 - CHILDREN_SHARE) / len(jobs)
            self.ctx.progress(CHILDREN_SHARE + i * span, stage=f"score {method}", force=True)
            runs.append(self._run(method, job, jobs, (CHILDREN_SHARE + i * span, span)))
        return build_report(
            runs,
            queries={q: query.text for q, query in self.ds.queries.items()},
            dataset=names[self.spec.dataset_id],
            base_model=self.spec.base_model,
            forgetting_dataset=names.get(self.spec.forgetting_dataset_id or ""),
        )

    def _run(
        self, method: str, job: JobRow, jobs: dict[str, JobRow], span: tuple[float, float]
    ) -> MethodRun:
        info = METHODS[method]  # type: ignore[index]
        wall = _wall(job)
        if info.builds_on and wall is not None:
            wall += _wall(jobs[info.builds_on]) or 0.0
        common = {
            "method": method,
            "status": job.status,
            "reencode": info.reencode,
            "job_id": job.id,
            "wall_seconds": wall,
            "error": job.error_message,
        }
        if job.status != "succeeded":
            return MethodRun(**common)
        model = _model_of(job)
        test = self._test(job, model, method, span)
        forgetting = self._forgets(model, method, span) if self.forgets else None
        return MethodRun(**common, test=test, forgetting=forgetting)

    def _test(self, job: JobRow, model: str, method: str, span: tuple[float, float]) -> EvalReport:
        saved = job.result.get("test_report_path") or job.result.get("report_path")
        if saved:  # eval and nudge jobs scored the test split themselves
            return EvalReport.load(Path(saved))
        return self._evaluate(self.ds, model, self.spec.test_split, f"score {method}", span)

    def _forgets(self, model: str, method: str, span: tuple[float, float]) -> dict[str, float]:
        if model not in self._forgetting:
            assert self.other is not None
            split, label = self.spec.forgetting_split, f"forgetting {method}"
            report = self._evaluate(self.other, model, split, label, span)
            self._forgetting[model] = {k: report.metrics[k] for k in HEADLINE}
        return self._forgetting[model]

    def _evaluate(
        self, ds: RetrievalDataset, model: str, split: str, label: str, span: tuple[float, float]
    ) -> EvalReport:
        stage = self.ctx.stage(label, *span)
        return evaluate(
            ds,
            _embedder(self.ctx, model, EncodingOptions()),
            EvalSpec(split=split),
            cache=self.cache,
            progress=lambda _, done, total: stage(done, total),
        )


def _model_of(job: JobRow) -> str:
    """The model a child evaluated, produced or nudged the embeddings of."""
    if job.type == "finetune":
        return job.result["model_id"]
    return job.result.get("model") or job.spec["model"]


def _wall(job: JobRow) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return (as_utc(job.finished_at) - as_utc(job.started_at)).total_seconds()

"""compare: one child job per method, then one report that scores what each one made.

Submission creates a queued child job per method; each is visible and cancellable on its
own and runs on any worker like any job. A NUDGE child that builds on a fine-tune waits for
it (a dependency), and the compare job waits for every child: it is enqueued only once the
last child has finished, and its own run is the scoring step. No worker waits for another
job. Fine-tuned models are scored here on the test split; every model also on the dataset
it was not trained on (forgetting). A NUDGE index leaves the model as it was, so it shares
its model's forgetting figures.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator
from sqlalchemy.orm import Session

from core.compare import METHODS, MethodRun, build_report, to_markdown
from core.compare.methods import (
    BASELINE,
    BASELINE_INFO,
    DEFAULT_METHODS,
    RERANKED,
    CompareMethod,
    method_info,
)
from core.datasets.model import RetrievalDataset
from core.evaluation.evaluator import EvalSpec, evaluate
from core.evaluation.metrics import HEADLINE_METRICS
from core.evaluation.report import EvalReport
from core.jobs import lifecycle
from core.jobs.common import (
    EncodePrecision,
    EncodingOptions,
    Id,
    ModelRef,
    SpecModel,
    Submission,
    cache_of,
    check_dataset,
    check_model,
    dataset_of,
    embedder_for,
    reranker_of,
)
from core.jobs.context import JobContext
from core.jobs.kinds import eval as eval_kind
from core.jobs.kinds import finetune, merge, nudge
from core.models.embedder import Embedder
from core.models.remote import is_remote
from core.names import Name
from core.store import repos
from core.store.db import transaction
from core.store.tables import DatasetRow, JobRow, ModelRow, as_utc, utcnow

TYPE = "compare"
QUEUE = "cpu"  # only the scoring step runs here: the fine-tunes are children on the gpu queue
REPORT = "report.md"  # in the job's artifacts
BASELINE_METHOD = "base"  # every compare job scores the base model (see the spec's check)


class CompareJobSpec(SpecModel):
    dataset_id: Id
    base_model: ModelRef
    forgetting_dataset_id: Id | None = Field(
        None, description="A dataset not trained on: its metrics show forgetting."
    )
    forgetting_split: Name = "test"
    methods: list[CompareMethod] = Field(default_factory=lambda: list(DEFAULT_METHODS))
    train_split: Name = "train"
    test_split: Name = "test"
    val_fraction: float = Field(0.2, gt=0, lt=1)
    baselines: list[ModelRef] = Field(
        default_factory=list,
        max_length=4,
        description="Other models scored on the test split beside the methods, e.g. "
        "remote:<name> for the embeddings API the team uses today.",
    )
    params: finetune.FinetuneParams = Field(
        default_factory=lambda: finetune.FinetuneParams(),
        description="The fine-tune settings of every fine-tune.",
    )
    data_checks: finetune.DataChecks = finetune.DATA_CHECKS
    merge_forgetting_split: Name = Field(
        "train",
        description="The forgetting dataset's split the merges choose weights on (the report "
        "scores forgetting_split).",
    )
    reranker: ModelRef | None = Field(
        None, description="A reranker (cross-encoder) for the methods named in `rerank`."
    )
    rerank: list[CompareMethod] = Field(
        default_factory=list,
        description="Methods whose test candidates the reranker reorders: one more row each, "
        "'<method>+rerank' (the fusion weight is chosen on the validation queries).",
    )
    rerank_top_k: int = Field(100, ge=1, le=1000)
    precision: EncodePrecision = "fp32"  # of every row's scoring (a remote baseline: its own)

    @model_validator(mode="after")
    def _methods(self) -> CompareJobSpec:
        if len(set(self.methods)) != len(self.methods) or "base" not in self.methods:
            raise ValueError("methods must include 'base' and name each method once")
        for method in self.methods:
            needed = METHODS[method].builds_on
            if needed and needed not in self.methods[: self.methods.index(method)]:
                raise ValueError(f"'{method}' needs '{needed}' earlier in methods")
        if self.rerank and self.reranker is None:
            raise ValueError("rerank names methods: give the reranker")
        for method in self.rerank:
            if method not in self.methods or METHODS[method].job_type == "nudge":
                raise ValueError(f"rerank '{method}': a model method that is in methods")
        return self


class CompareJob(SpecModel):
    type: Literal["compare"]
    spec: CompareJobSpec


def check(session: Session, spec: CompareJobSpec, sub: Submission) -> None:
    """Every split the children read exists, and every child's spec is valid."""
    check_dataset(session, spec.dataset_id, sub, spec.train_split, spec.test_split)
    if spec.forgetting_dataset_id is not None:
        check_dataset(session, spec.forgetting_dataset_id, sub, spec.forgetting_split)
    base = check_model(session, spec.base_model, sub)
    if spec.reranker is not None:
        check_model(session, spec.reranker, sub)
    if spec.forgetting_dataset_id is not None and any(
        METHODS[m].job_type == "merge" for m in spec.methods
    ):
        check_dataset(session, spec.forgetting_dataset_id, sub, spec.merge_forgetting_split)
    for baseline in spec.baselines:
        check_model(session, baseline, sub, remote=True)
    for method in spec.methods:
        if METHODS[method].finetune:
            _, child = _child_spec(spec, method, {})
            finetune.finetune_spec(child, base)
            finetune.check_data(session, child)


def plan(session: Session, job: JobRow, spec: CompareJobSpec) -> list[JobRow]:
    """A queued child per method, in order, recorded on the parent, which waits for them."""
    children: list[dict[str, str]] = []
    made: dict[str, str] = {}
    rows = []
    for method in [*spec.methods, *(f"{BASELINE}{b}" for b in dict.fromkeys(spec.baselines))]:
        job_type, child_spec = _child_spec(spec, method, made)
        child = repos.add_job(
            session,
            project_id=job.project_id,
            type=job_type,
            spec=child_spec.model_dump(mode="json"),
            dataset_id=spec.dataset_id,
            parent_id=job.id,
            enqueued_at=utcnow(),
        )
        if job_type in (nudge.TYPE, merge.TYPE):
            (nudge if job_type == nudge.TYPE else merge).plan(session, child, child_spec)
        lifecycle.depend(session, job=job, on=child.id, required=False)
        made[method] = child.id
        children.append({"method": method, "job_id": child.id})
        rows.append(child)
    # a reranked row scores its method's model again, with the reranker: no job of its own
    children += [{"method": f"{m}{RERANKED}", "job_id": made[m]} for m in spec.rerank]
    job.result = {"children": children}
    return rows


def _child_spec(spec: CompareJobSpec, method: str, made: dict[str, str]) -> tuple[str, SpecModel]:
    info = method_info(method)
    common = {"dataset_id": spec.dataset_id, "train_split": spec.train_split}
    if info.job_type == "eval":
        model = method.removeprefix(BASELINE) if info is BASELINE_INFO else spec.base_model
        return eval_kind.TYPE, eval_kind.Spec(
            dataset_id=spec.dataset_id,
            model=model,
            split=spec.test_split,
            precision=_precision(spec, model),
        )
    if info.job_type == "finetune":
        return finetune.TYPE, finetune.Spec(
            **common,
            base_model=spec.base_model,
            method=info.finetune,
            val_fraction=spec.val_fraction,
            held_out_splits=[spec.test_split],
            params=spec.params,
            data_checks=spec.data_checks,
        )
    if info.job_type == "merge":
        assert info.builds_on is not None
        return merge.TYPE, merge.Spec(
            **common,
            base_model=spec.base_model,
            models_from_jobs=[made[info.builds_on]],
            forgetting_dataset_id=spec.forgetting_dataset_id,
            forgetting_split=spec.merge_forgetting_split,
            val_fraction=spec.val_fraction,
            held_out_splits=[spec.test_split],
            data_checks=spec.data_checks,
        )
    source = {"model_from_job": made[info.builds_on]} if info.builds_on else {}
    return nudge.TYPE, nudge.Spec(
        **common,
        **(source or {"model": spec.base_model}),
        variant=info.variant,
        val_fraction=spec.val_fraction,
        test_split=spec.test_split,
        precision=spec.precision,
    )


def run(ctx: JobContext, spec: CompareJobSpec) -> dict[str, Any]:
    """Score what every (finished) child made and write the report."""
    with ctx.factory() as session:
        parent = repos.get_or_404(session, JobRow, ctx.job_id, "job")
        children: list[dict[str, str]] = list(parent.result.get("children", []))
    report = _Scorer(ctx, spec).report(children)
    (ctx.artifacts / REPORT).write_text(to_markdown(report), "utf-8")
    return {"children": children, "report": report.to_dict()}


class _Scorer:
    """Test and forgetting metrics of each child's output, computed once per model."""

    def __init__(self, ctx: JobContext, spec: CompareJobSpec) -> None:
        self.ctx, self.spec = ctx, spec
        self.cache = cache_of(ctx)
        self.ds = dataset_of(ctx, spec.dataset_id)
        self.other = dataset_of(ctx, spec.forgetting_dataset_id) if self.forgets else None
        self._forgetting: dict[str, dict[str, float]] = {}
        self._tests: dict[str, EvalReport] = {}  # by method: the first stage of a reranked row

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
            span = 1 / len(jobs)
            self.ctx.progress(i * span, stage=f"score {method}", force=True)
            runs.append(self._run(method, job, jobs, (i * span, span)))
        if self.forgets:
            tuned = {
                m: j.result["model_id"]
                for m, j in jobs.items()
                if j.type == finetune.TYPE and "model_id" in j.result
            }
            with transaction(self.ctx.factory) as session:
                record_forgetting(session, self.spec, self.ctx.job_id, runs, tuned)
        return build_report(
            runs,
            queries={q: query.text for q, query in self.ds.queries.items()},
            documents={d: doc.title or doc.text for d, doc in self.ds.corpus.items()},
            dataset=names[self.spec.dataset_id],
            base_model=self.spec.base_model,
            forgetting_dataset=names.get(self.spec.forgetting_dataset_id or ""),
        )

    def _run(
        self, method: str, job: JobRow, jobs: dict[str, JobRow], span: tuple[float, float]
    ) -> MethodRun:
        info = method_info(method)
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
        if method.endswith(RERANKED):
            test = self._rerank(model, self._tests[method.removesuffix(RERANKED)])
        else:
            test = self._tests[method] = self._test(job, model, method, span)
        forgetting = self._forgets(model, method, span) if self.forgets else None
        return MethodRun(**common, test=test, forgetting=forgetting)

    def _rerank(self, model: str, first: EvalReport) -> EvalReport:
        """The model's test candidates reranked and fused (weight chosen on validation)."""
        from core.reranking.pipeline import rerank_embedder

        assert self.spec.reranker is not None
        reranked = rerank_embedder(
            self.ds,
            self._embedder(model),
            reranker_of(self.ctx, self.spec.reranker),
            split=self.spec.test_split,
            top_k=self.spec.rerank_top_k,
            val_fraction=self.spec.val_fraction,
            first_report=first,
            cache=self.cache,
        )
        return reranked.fused_report(self.ds)

    def _test(self, job: JobRow, model: str, method: str, span: tuple[float, float]) -> EvalReport:
        saved = job.result.get("test_report") or job.result.get("report")
        if saved:  # eval and nudge jobs scored the test split themselves
            return EvalReport.load(self.ctx.settings.jobs_dir / job.id / saved)
        return self._evaluate(self.ds, model, self.spec.test_split, f"score {method}", span)

    def _forgets(self, model: str, method: str, span: tuple[float, float]) -> dict[str, float]:
        if model not in self._forgetting:
            assert self.other is not None
            split, label = self.spec.forgetting_split, f"forgetting {method}"
            report = self._evaluate(self.other, model, split, label, span)
            self._forgetting[model] = {k: report.metrics[k] for k in HEADLINE_METRICS}
        return self._forgetting[model]

    def _evaluate(
        self, ds: RetrievalDataset, model: str, split: str, label: str, span: tuple[float, float]
    ) -> EvalReport:
        stage = self.ctx.stage(label, *span)
        return evaluate(
            ds,
            self._embedder(model),
            EvalSpec(split=split),
            cache=self.cache,
            progress=lambda _, done, total: stage(done, total),
        )

    def _embedder(self, model: str) -> Embedder:
        return embedder_for(self.ctx, model, EncodingOptions(), _precision(self.spec, model))


def _precision(spec: CompareJobSpec, model: str) -> EncodePrecision:
    """The compare's precision, but fp32 for a remote endpoint (it encodes at its own)."""
    return "fp32" if is_remote(model) else spec.precision


def record_forgetting(
    session: Session,
    spec: CompareJobSpec,
    job_id: str,
    runs: list[MethodRun],
    tuned: dict[str, str],
) -> None:
    """Keep each fine-tuned model's forgetting with the model (``metrics.forgetting``: the
    base and model figures and ``drop`` = base - model), where the promotion gate reads it;
    ``tuned`` maps the fine-tune methods to their model ids."""
    base = next((r.forgetting for r in runs if r.method == BASELINE_METHOD), None)
    for run in runs:
        row = session.get(ModelRow, tuned[run.method]) if run.method in tuned else None
        if base is None or row is None or run.forgetting is None:
            continue
        row.metrics = {
            **row.metrics,
            "forgetting": {
                "dataset_id": spec.forgetting_dataset_id,
                "split": spec.forgetting_split,
                "compare_job_id": job_id,
                "base": base,
                "model": run.forgetting,
                "drop": {k: base[k] - v for k, v in run.forgetting.items() if k in base},
            },
        }


def _model_of(job: JobRow) -> str:
    """The model a child evaluated, produced or nudged the embeddings of."""
    if "model_id" in job.result:  # finetune, merge
        return job.result["model_id"]
    return job.result.get("model") or job.spec["model"]


def _wall(job: JobRow) -> float | None:
    if job.started_at is None or job.finished_at is None:
        return None
    return (as_utc(job.finished_at) - as_utc(job.started_at)).total_seconds()


Spec, Request = CompareJobSpec, CompareJob  # the names every kind module has

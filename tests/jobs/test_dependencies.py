"""Jobs that wait for other jobs, on real Postgres: nothing holds a worker while it waits; the
end of a job enqueues what waited for it, or fails / cancels what needed it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from core.jobs.kinds.eval import EvalJob
from core.jobs.kinds.finetune import FinetuneJob
from core.jobs.kinds.nudge import NudgeJob
from core.jobs.reconcile import reconcile
from core.jobs.runner import run_job
from core.jobs.service import cancel_job
from core.settings import Settings
from core.store.db import transaction
from core.store.tables import JobRow, utcnow
from tests.jobs.test_lifecycle import job, submit


def finetune_then_nudge(factory, sample_id: str, model: Path, sent: list) -> tuple[str, str]:
    tune = submit(
        factory,
        FinetuneJob(
            type="finetune",
            spec={
                "dataset_id": sample_id,
                "base_model": str(model),
                "params": {"epochs": 1, "batch_size": 16, "max_seq_length": 32},
                "data_checks": "drop",  # the sample: 2 test queries have a train query's text
            },
        ),
        sent,
    )
    nudge = submit(
        factory,
        NudgeJob(
            type="nudge",
            spec={"dataset_id": sample_id, "model_from_job": tune, "steps": [0.1]},
        ),
        sent,
    )
    return tune, nudge


def test_a_dependent_is_enqueued_only_when_what_it_needs_succeeded(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    sent: list = []
    tune, nudge = finetune_then_nudge(factory, sample_id, tiny_model_dir, sent)
    assert [j for j, _ in sent] == [tune]  # the nudge job waits, on no broker and no worker
    again: list = []
    assert run_job(nudge, factory=factory, settings=settings, worker="w", enqueue=again.append) == (
        "waiting"
    )  # a stray delivery claims nothing
    assert job(factory, nudge).attempts == 0
    # the reconciler does not hand a waiting job to the broker either
    with transaction(factory) as session:
        session.execute(update(JobRow).values(enqueued_at=utcnow() - timedelta(minutes=5)))
    lost = reconcile(factory, settings, enqueue=lambda *_: None, broker_job_ids=lambda: set())
    assert lost.reenqueued_lost == [tune]
    released: list = []
    outcome = run_job(
        tune,
        factory=factory,
        settings=settings,
        worker="w",
        enqueue=lambda job_id, queue: released.append((job_id, queue)),
    )
    assert outcome == "succeeded" and released == [(nudge, "cpu")]
    assert run_job(nudge, factory=factory, settings=settings, worker="w", enqueue=print) == (
        "succeeded"
    )
    model_id = job(factory, tune).result["model_id"]
    assert job(factory, nudge).result["model"] == model_id


def test_a_cancelled_or_failed_dependency_ends_its_dependents_with_a_code(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    tune, nudge = finetune_then_nudge(factory, sample_id, tiny_model_dir, [])
    cancel_job(factory, job_id=tune, enqueue=lambda *_: None)
    ended = job(factory, nudge)
    assert (ended.status, ended.error_code) == ("cancelled", "dependency_cancelled")

    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "config.json").write_text("{}")  # no weights: the fine-tune fails
    tune, nudge = finetune_then_nudge(factory, sample_id, broken, [])
    assert run_job(tune, factory=factory, settings=settings, worker="w", enqueue=print) == "failed"
    ended = job(factory, nudge)
    assert (ended.status, ended.error_code) == ("failed", "dependency_failed")
    assert tune in ended.error_message


def test_an_eval_job_waits_for_nothing(factory, sample_id: str, tiny_model_dir: Path) -> None:
    sent: list = []
    spec = {"dataset_id": sample_id, "model": str(tiny_model_dir)}
    job_id = submit(factory, EvalJob(type="eval", spec=spec), sent)
    assert sent == [(job_id, "cpu")]


def test_the_reconciler_enqueues_a_released_dependent_the_broker_never_got(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path
) -> None:
    """The fine-tune ends, but its process dies before it enqueues the waiting nudge job."""
    tune, nudge = finetune_then_nudge(factory, sample_id, tiny_model_dir, [])

    def broker_down(job_id: str, queue: str) -> None:
        raise ConnectionError("the broker went away")

    assert run_job(tune, factory=factory, settings=settings, worker="w", enqueue=broker_down) == (
        "succeeded"
    )
    assert job(factory, nudge).status == "queued"
    with transaction(factory) as session:  # past the reconciler's grace period
        session.execute(update(JobRow).values(enqueued_at=utcnow() - timedelta(minutes=5)))
    sent: list = []
    done = reconcile(
        factory, settings, enqueue=lambda j, q: sent.append((j, q)), broker_job_ids=lambda: set()
    )
    assert done.reenqueued_lost == [nudge] and sent == [(nudge, "cpu")]

"""The job runner and reconciler on real Postgres: leases, hand-off, stale and lost jobs."""

from __future__ import annotations

import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from core.jobs.kinds.eval import EvalJob
from core.jobs.kinds.finetune import FinetuneJob
from core.jobs.reconcile import reconcile
from core.jobs.runner import run_job
from core.jobs.service import submit_job
from core.services.datasets import register_dataset, staging_dir
from core.settings import Settings
from core.store.db import transaction
from core.store.tables import JobEventRow, JobRow, MetricRow, utcnow
from tests.conftest import SAMPLE


def submit(factory, request, sent: list | None = None) -> str:
    sink = sent if sent is not None else []
    return submit_job(
        factory, request, enqueue=lambda j, q: sink.append((j, q)), allow_paths=True
    ).id


def long_finetune(dataset_id: str, model: Path) -> FinetuneJob:
    return FinetuneJob(
        type="finetune",
        spec={
            "dataset_id": dataset_id,
            "base_model": str(model),
            "method": "full",
            "params": {"epochs": 50, "batch_size": 16, "max_seq_length": 32},
            "data_checks": "drop",  # the sample: 2 test queries have a train query's text
        },
    )


def job(factory, job_id: str) -> JobRow:
    with factory() as session:
        return session.get(JobRow, job_id)


def wait_until(predicate, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


def start(factory, settings: Settings, job_id: str, worker: str = "w1") -> dict:
    out: dict = {}
    thread = threading.Thread(
        target=lambda: out.update(
            outcome=run_job(
                job_id, factory=factory, settings=settings, worker=worker, enqueue=lambda *_: None
            )
        )
    )
    thread.start()
    out["thread"] = thread
    return out


def test_a_held_job_is_not_run_twice(factory, settings, sample_id, tiny_model_dir) -> None:
    job_id = submit(factory, long_finetune(sample_id, tiny_model_dir))
    first = start(factory, settings, job_id)
    wait_until(lambda: job(factory, job_id).stage == "train")
    assert (
        run_job(job_id, factory=factory, settings=settings, worker="w2", enqueue=lambda *_: None)
        == "busy"
    )
    with transaction(factory) as session:
        session.execute(update(JobRow).where(JobRow.id == job_id).values(cancel_requested=True))
    first["thread"].join(60)
    assert first["outcome"] == "cancelled"
    assert job(factory, job_id).attempts == 1 and job(factory, job_id).worker == "w1"


def test_a_worker_that_lost_its_lease_stops_writing(
    factory, settings, sample_id, tiny_model_dir
) -> None:
    job_id = submit(factory, long_finetune(sample_id, tiny_model_dir))
    first = start(factory, settings, job_id)
    wait_until(lambda: job(factory, job_id).stage == "train")
    with transaction(factory) as session:  # what the reconciler does to a stale job
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(lease_token="taken-back", status="queued")
        )
    taken = utcnow()
    first["thread"].join(30)
    assert first["outcome"] == "lease_lost"
    with factory() as session:
        late_metrics = session.scalars(
            select(MetricRow).where(
                MetricRow.job_id == job_id, MetricRow.at > taken + timedelta(seconds=1)
            )
        ).all()
        late_events = session.scalars(
            select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.at > taken)
        ).all()
    assert late_metrics == [] and late_events == []
    assert job(factory, job_id).status == "queued"


def test_hand_off_puts_the_job_back_without_spending_an_attempt(
    factory, settings, sample_id, tiny_model_dir
) -> None:
    job_id = submit(factory, long_finetune(sample_id, tiny_model_dir))
    first = start(factory, settings, job_id, worker="w1")
    wait_until(lambda: job(factory, job_id).stage == "train")
    from core.store import repos

    with transaction(factory) as session:
        assert repos.request_handoff(session, worker="w1") == [job_id]
    first["thread"].join(30)
    assert first["outcome"] == "requeue"
    row = job(factory, job_id)
    assert (row.status, row.attempts, row.lease_token) == ("queued", 0, None)


def test_stale_running_jobs_are_requeued_then_failed_as_worker_lost(
    factory, settings, sample_id
) -> None:
    model = "sentence-transformers/all-MiniLM-L6-v2"
    job_id = submit(factory, EvalJob(type="eval", spec={"dataset_id": sample_id, "model": model}))
    old = utcnow() - timedelta(seconds=settings.lease_seconds + 5)
    with transaction(factory) as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(status="running", heartbeat_at=old, attempts=1, lease_token="dead")
        )
    sent: list = []
    done = reconcile(
        factory, settings, enqueue=lambda j, q: sent.append(j), broker_job_ids=lambda: {job_id}
    )
    assert done.requeued_stale == [job_id] and sent == [job_id]
    assert (job(factory, job_id).status, job(factory, job_id).lease_token) == ("queued", None)

    with transaction(factory) as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job_id)
            .values(status="running", heartbeat_at=old, attempts=settings.job_max_attempts)
        )
    done = reconcile(factory, settings, enqueue=lambda j, q: None, broker_job_ids=lambda: set())
    assert done.failed_stale == [job_id]
    row = job(factory, job_id)
    assert (row.status, row.error_code) == ("failed", "worker_lost")


def test_queued_jobs_the_broker_lost_are_enqueued_again(factory, settings, sample_id) -> None:
    model = "sentence-transformers/all-MiniLM-L6-v2"
    spec = {"dataset_id": sample_id, "model": model}
    lost = submit(factory, EvalJob(type="eval", spec=spec))
    held = submit(factory, EvalJob(type="eval", spec=spec))
    fresh = submit(factory, EvalJob(type="eval", spec=spec))
    old = utcnow() - timedelta(seconds=60)
    with transaction(factory) as session:
        session.execute(update(JobRow).where(JobRow.id.in_([lost, held])).values(enqueued_at=old))
    sent: list = []
    done = reconcile(
        factory, settings, enqueue=lambda j, q: sent.append((j, q)), broker_job_ids=lambda: {held}
    )
    assert done.reenqueued_lost == [lost] and sent == [(lost, "cpu")]
    assert fresh not in done.reenqueued_lost  # just submitted: give the broker its time
    # Without a view of the broker nothing is guessed.
    assert (
        reconcile(
            factory, settings, enqueue=lambda j, q: None, broker_job_ids=lambda: None
        ).reenqueued_lost
        == []
    )


def test_attempts_are_bounded(factory, settings, sample_id) -> None:
    model = "sentence-transformers/all-MiniLM-L6-v2"
    job_id = submit(factory, EvalJob(type="eval", spec={"dataset_id": sample_id, "model": model}))
    with transaction(factory) as session:
        session.execute(
            update(JobRow).where(JobRow.id == job_id).values(attempts=settings.job_max_attempts)
        )
    assert (
        run_job(job_id, factory=factory, settings=settings, worker="w", enqueue=lambda *_: None)
        == "failed"
    )
    assert job(factory, job_id).error_code == "worker_lost"


def test_an_unexpected_failure_stores_a_code_and_a_safe_message(
    factory, settings: Settings, sample_id: str, tiny_model_dir: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "models" / "broken-model"
    shutil.copytree(tiny_model_dir, broken)
    for weights in broken.rglob("*.safetensors"):
        weights.write_bytes(b"not safetensors at all")
    job_id = submit(
        factory, EvalJob(type="eval", spec={"dataset_id": sample_id, "model": str(broken)})
    )
    assert (
        run_job(job_id, factory=factory, settings=settings, worker="w", enqueue=lambda *_: None)
        == "failed"
    )
    failed = job(factory, job_id)
    assert failed.error_code == "internal_error"
    assert "error " in failed.error_message and "worker log" in failed.error_message
    assert str(tmp_path) not in failed.error_message and "Error:" not in failed.error_message


def test_a_finetune_never_trains_on_a_query_its_test_split_judges(
    factory, settings: Settings, tiny_model_dir: Path
) -> None:
    staging = staging_dir(settings)
    sample = staging / "scifact"
    shutil.copytree(SAMPLE, sample)
    train = (sample / "qrels" / "train.tsv").read_text().splitlines()
    test = (sample / "qrels" / "test.tsv").read_text().splitlines()
    (sample / "qrels" / "test.tsv").write_text("\n".join([*test, train[1]]) + "\n")
    leaked = train[1].split("\t")[0]
    with transaction(factory) as session:
        dataset_id = register_dataset(session, settings=settings, staging=staging).id
    spec = {
        "dataset_id": dataset_id,
        "base_model": str(tiny_model_dir),
        "params": {"epochs": 1, "batch_size": 16, "max_seq_length": 32, "mine_negatives": False},
        "data_checks": "drop",
    }
    job_id = submit(factory, FinetuneJob(type="finetune", spec=spec))
    outcome = run_job(job_id, factory=factory, settings=settings, worker="w", enqueue=print)
    assert outcome == "succeeded", job(factory, job_id).error_message
    with factory() as session:
        logs = [
            e.message
            for e in session.scalars(select(JobEventRow).where(JobEventRow.job_id == job_id))
        ]
    assert "1 queries of 'test' are also in 'train': not trained on" in logs, leaked
    # The sample's own leaks: test claims 870 and 1292 have the text of train claims 871, 1291.
    assert "data check test_query_in_train: 2 record(s) dropped from training" in logs


def test_a_job_is_committed_before_it_is_enqueued(
    factory, sample_id: str, tiny_model_dir: Path
) -> None:
    """The broker never delivers a job id a worker could not read yet."""
    committed: list[bool] = []

    def enqueue(job_id: str, queue: str) -> None:  # what a worker would see at this moment
        with factory() as session:
            committed.append(session.get(JobRow, job_id) is not None)

    spec = {"dataset_id": sample_id, "model": str(tiny_model_dir)}
    submit_job(factory, EvalJob(type="eval", spec=spec), enqueue=enqueue, allow_paths=True)
    assert committed == [True]

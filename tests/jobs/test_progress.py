"""A running job's progress: throttled writes and an ETA from the measured time per step."""

from __future__ import annotations

from core.jobs import context as context_module
from core.jobs.context import JobContext
from core.settings import Settings
from core.store.db import transaction
from core.store.tables import JobRow, utcnow


def running_job(factory) -> tuple[str, str]:
    with transaction(factory) as session:
        row = JobRow(
            id="job_progress",
            project_id="prj_default",
            type="finetune",
            status="running",
            spec={},
            lease_token="t0k",
            heartbeat_at=utcnow(),
        )
        session.add(row)
    return row.id, "t0k"


def test_steps_write_at_most_once_a_second_with_an_eta_from_step_time(
    factory, settings: Settings, monkeypatch
) -> None:
    job_id, token = running_job(factory)
    clock = [1000.0]
    monkeypatch.setattr(context_module.time, "monotonic", lambda: clock[0])
    ctx = JobContext(
        job_id,
        factory,
        settings,
        settings.jobs_dir / job_id,
        token,
        lambda *_: None,
        started=1000.0,
    )
    writes = []
    real = context_module.repos.update_leased

    def counted(session, **values):
        writes.append(values)
        return real(session, **values)

    monkeypatch.setattr(context_module.repos, "update_leased", counted)
    ctx.step("train", 0.1, 0.8, 0, 100)  # the stage's first report: no step time measured yet
    for step in range(1, 21):  # 20 steps of 0.25 s: five seconds
        clock[0] += 0.25
        ctx.step("train", 0.1, 0.8, step, 100)
    assert 4 <= len(writes) <= 6  # about one a second, not one a step
    with factory() as session:
        row = session.get(JobRow, job_id)
    assert (row.stage, row.current_step, row.total_steps) == (
        "train",
        writes[-1]["current_step"],
        100,
    )
    done = writes[-1]["current_step"]
    # 0.25 s a step for the steps left, plus the 10% after training at the pace so far.
    left = 0.25 * (100 - done)
    pace = 0.25 * done * 0.1 / (0.1 + 0.8 * (done - 1) / 100)
    assert abs(row.eta_seconds - (left + pace)) < 1e-6
    assert row.progress == 0.1 + 0.8 * done / 100

"""eval jobs over a stored index: a NUDGE index as the first stage, alone and reranked; an
index of another dataset, or a model beside the index, is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.errors import InvalidInput
from core.jobs.kinds.eval import EvalJob
from core.jobs.kinds.nudge import NudgeJob
from core.jobs.service import submit_job
from tests.jobs.test_export import register_sample, run
from tests.jobs.test_lifecycle import submit


def test_a_nudge_index_is_a_first_stage_with_the_scores_nudge_reported(
    factory, settings, sample_id: str, tiny_model_dir: Path, tiny_reranker_dir: Path
) -> None:
    spec = {"dataset_id": sample_id, "model": str(tiny_model_dir), "steps": [0.1, 0.5]}
    nudged = run(factory, settings, submit(factory, NudgeJob(type="nudge", spec=spec))).result
    assert nudged["docs_moved"] > 0
    index_id = nudged["index_id"]
    spec = {"dataset_id": sample_id, "index_id": index_id, "split": "test"}
    job = run(factory, settings, submit(factory, EvalJob(type="eval", spec=spec)))
    assert job.result["index_id"] == index_id
    for name, value in nudged["test"]["after"].items():
        assert job.result["metrics"][name] == pytest.approx(value, abs=1e-6), name
    assert nudged["test"]["after"]["ndcg@10"] != pytest.approx(nudged["test"]["before"]["ndcg@10"])

    reranked = {**spec, "reranker": str(tiny_reranker_dir), "rerank_top_k": 10}
    job = run(factory, settings, submit(factory, EvalJob(type="eval", spec=reranked)))
    first = job.result["rerank"]["metrics"]["first_stage"]
    assert first["ndcg@10"] == pytest.approx(nudged["test"]["after"]["ndcg@10"], abs=1e-6)
    assert set(job.result["rerank"]["metrics"]) == {"first_stage", "reranked", "fused"}

    other = register_sample(factory, settings)
    with pytest.raises(InvalidInput) as caught:
        submit(factory, EvalJob(type="eval", spec={"dataset_id": other, "index_id": index_id}))
    assert (caught.value.code, caught.value.param) == ("index_dataset_mismatch", "index_id")
    both = {"dataset_id": sample_id, "index_id": index_id, "model": str(tiny_model_dir)}
    for spec in (both, {"dataset_id": sample_id}):
        with pytest.raises(ValueError, match="exactly one of model and index_id"):
            submit_job(factory, EvalJob(type="eval", spec=spec), enqueue=print, allow_paths=True)

"""Every job kind, by type; the only list of them. Imported by the service and the runner."""

from __future__ import annotations

from types import ModuleType
from typing import Annotated, Literal, Union

from pydantic import Field

from core.jobs.kinds import (
    compare,
    encode,
    eval,
    export,
    finetune,
    index,
    merge,
    mine,
    nudge,
    quantize,
    rerank_finetune,
    search,
    synthesize,
)

KINDS: dict[str, ModuleType] = {
    kind.TYPE: kind
    for kind in (
        eval,
        index,
        encode,
        mine,
        finetune,
        nudge,
        compare,
        export,
        quantize,
        synthesize,
        rerank_finetune,
        merge,
        search,
    )
}

JobType = Literal[
    "eval",
    "index",
    "encode",
    "mine",
    "finetune",
    "nudge",
    "compare",
    "export",
    "quantize",
    "synthesize",
    "rerank_finetune",
    "merge",
    "search",
]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobRequest = Annotated[
    Union[tuple(kind.Request for kind in KINDS.values())],  # noqa: UP007 (built at run time)
    Field(discriminator="type"),
]
"""The body of ``POST /v1/jobs``: ``{"type": ..., "spec": ...}`` of any kind."""


def kind_of(job_type: str) -> ModuleType:
    return KINDS[job_type]


def queue_of(job_type: str) -> str:
    return KINDS[job_type].QUEUE

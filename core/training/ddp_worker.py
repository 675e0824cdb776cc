"""One DDP rank (``torchrun ... -m core.training.ddp_worker BUNDLE_DIR``): builds the model
exactly as a one-process run does, trains its share of each batch, and on rank 0 saves the model
and prints the reporter calls and the result for the parent (``core.training.distributed``)."""

from __future__ import annotations

import json
import os
import pickle
import sys
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from core.errors import CoreError
from core.training.distributed import (
    CANCEL_FLAG,
    EVENT_PREFIX,
    RANK_LOG,
    Bundle,
    DistributedRun,
)


class PipeReporter:
    """Rank 0's reporter: each call becomes one line on stdout; other ranks stay quiet."""

    def __init__(self, rank: int) -> None:
        self.rank = rank

    def _send(self, call: str, *args: Any) -> None:
        if self.rank == 0:
            print(EVENT_PREFIX + json.dumps({"call": call, "args": list(args)}), flush=True)

    def on_step(self, step: int, total: int, loss: float, lr: float) -> None:
        self._send("on_step", step, total, loss, lr)

    def on_progress(self, stage: str, done: int, total: int) -> None:
        self._send("on_progress", stage, done, total)

    def on_eval(self, step: int, metrics: dict[str, float]) -> None:
        self._send("on_eval", step, metrics)

    def on_event(self, message: str) -> None:
        self._send("on_event", message)


def cancel_check(flag: Path):
    """True on every rank at the same step once the parent raised ``flag`` (one all-reduce)."""

    def check() -> bool:
        raised = torch.tensor([1.0 if flag.exists() else 0.0])
        if dist.is_initialized():
            dist.all_reduce(raised, op=dist.ReduceOp.MAX)
        return bool(raised.item())

    return check


def quiet_other_ranks(rank: int, work: Path) -> None:
    """Every rank but 0 writes its output to ``work/rank-N.log``: on the shared pipe a progress
    bar's unfinished line would run into one of rank 0's messages and hide it."""
    if rank == 0:
        return
    log = os.open(work / RANK_LOG.format(rank=rank), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
        os.dup2(log, stream.fileno())
    os.close(log)


def main(work: Path) -> int:
    from core.training.finetune import save_trained, start_transformer
    from core.training.st_trainer import train_st

    rank = int(os.environ.get("RANK", "0"))
    quiet_other_ranks(rank, work)
    with open(work / "bundle.pkl", "rb") as f:
        bundle: Bundle = pickle.load(f)  # written by the parent job for its own ranks
    reporter = PipeReporter(rank)
    try:
        model = start_transformer(bundle.spec, bundle.base)
        run = train_st(
            bundle.spec,
            bundle.dataset,
            model,
            bundle.base,
            bundle.output_dir,
            splits=bundle.splits,
            reporter=reporter,
            should_cancel=cancel_check(work / CANCEL_FLAG),
            resume=bundle.resume,
            columns=bundle.columns,
        )
        if rank == 0:
            save_trained(run.model, bundle.spec, bundle.base, bundle.output_dir)
            done = DistributedRun(**{f.name: getattr(run, f.name) for f in fields(DistributedRun)})
            print(EVENT_PREFIX + json.dumps({"run": asdict(done)}), flush=True)
    except Exception as exc:  # the parent re-raises it as the job's error
        if rank == 0:
            error = {"type": type(exc).__name__, "message": str(exc)}
            if isinstance(exc, CoreError):
                error.update(message=exc.message, param=exc.param)
            print(EVENT_PREFIX + json.dumps({"error": error}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

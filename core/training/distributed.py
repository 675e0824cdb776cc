"""Data-parallel fine-tuning (DDP) over several processes, launched with ``torchrun``.

One process per GPU (NCCL), or gloo processes on a CPU. ``spec.batch_size`` stays the global
batch: each process trains ``batch_size / processes`` rows a step and MNRL gathers the others'
embeddings, so the in-batch negatives, the loss and the gradients are those of one process
training the whole batch. The job's process stays the parent: it writes the inputs to a
bundle, forwards rank 0's progress to its ``Reporter`` and turns a cancel request into a flag
file that every rank polls together (``core.training.ddp_worker``).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import errors
from core.datasets.model import RetrievalDataset
from core.errors import InvalidInput
from core.models.resolve import ResolvedModel
from core.training.hooks import CancelCheck, Reporter
from core.training.spec import FinetuneSpec

logger = logging.getLogger(__name__)
BUNDLE = "ddp"
EVENT_PREFIX = "@@embedtune "  # rank 0's stdout lines that carry a reporter call or the result
CANCEL_FLAG = "cancel"
RANK_LOG = "rank-{rank}.log"  # the output of every rank but 0, beside the bundle


@dataclass(frozen=True)
class Bundle:
    """Everything a rank needs to build and train the same model as a one-process run."""

    spec: FinetuneSpec
    dataset: RetrievalDataset
    base: ResolvedModel
    output_dir: Path
    splits: tuple[str, str | None]
    resume: bool
    columns: dict[str, list] | None


@dataclass(frozen=True)
class DistributedRun:
    """What rank 0 reports when training ends (the model is already saved in ``output_dir``)."""

    history: list[dict[str, Any]]
    best_metrics: dict[str, float]
    best_step: int | None
    train_seconds: float
    samples_per_second: float
    train_examples: int


def world_size() -> int:
    """The DDP ranks this process trains with (``torchrun`` sets ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def train_processes(spec: FinetuneSpec) -> int:
    """How many processes train: ``spec.processes``, else every visible GPU (one on a CPU)."""
    if spec.processes is not None:
        count = spec.processes
    else:
        import torch

        count = max(torch.cuda.device_count(), 1)
    if count > 1 and spec.method == "adapter":
        raise InvalidInput("the query adapter trains in one process", param="processes")
    if spec.batch_size % count:
        raise InvalidInput(
            f"batch_size {spec.batch_size} must divide into {count} processes", param="batch_size"
        )
    return count


def train_distributed(
    bundle: Bundle, processes: int, reporter: Reporter, should_cancel: CancelCheck | None
) -> DistributedRun:
    """Train ``bundle`` on ``processes`` ranks; rank 0 saves the model into its output dir."""
    work = bundle.output_dir / BUNDLE
    work.mkdir(parents=True, exist_ok=True)
    (work / CANCEL_FLAG).unlink(missing_ok=True)
    with open(work / "bundle.pkl", "wb") as f:  # read back only by our own ranks
        pickle.dump(bundle, f)
    reporter.on_event(f"training on {processes} processes (DDP)")
    process = subprocess.Popen(
        _command(processes, work),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_environment(processes),
    )
    watcher = threading.Thread(
        target=_watch_cancel, args=(process, should_cancel, work / CANCEL_FLAG), daemon=True
    )
    watcher.start()
    result: dict[str, Any] | None = None
    tail: list[str] = []
    try:
        for message in _messages(process.stdout, tail):
            result = _dispatch(message, reporter) or result
        code = process.wait()
        if result is None or "error" in result:
            raise _error(result, code, tail[-5:] + _rank_logs(work))
    finally:
        if process.poll() is None:  # the reporter failed: torchrun stops its ranks on SIGTERM
            process.terminate()
            process.wait()
        shutil.rmtree(work, ignore_errors=True)  # the bundle holds the dataset: not model files
    return DistributedRun(**result["run"])


def _command(processes: int, work: Path) -> list[str]:
    return [
        sys.executable, "-m", "torch.distributed.run", "--standalone",
        f"--nproc_per_node={processes}", "-m", "core.training.ddp_worker", str(work),
    ]  # fmt: skip


def _environment(processes: int) -> dict[str, str]:
    """CPU threads shared out among the ranks, so gloo processes do not oversubscribe."""
    threads = max((os.cpu_count() or 1) // processes, 1)
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}


def _watch_cancel(process: subprocess.Popen, should_cancel: CancelCheck | None, flag: Path) -> None:
    """Polls ``should_cancel`` while the ranks run; on True, raises the flag they read."""
    while should_cancel is not None and process.poll() is None:
        if should_cancel():
            flag.touch()
            return
        threading.Event().wait(0.5)


def _messages(stream: Any, tail: list[str]) -> Iterator[dict[str, Any]]:
    """Rank 0's messages, also where an unfinished line (a progress bar) ran into one; every
    other line goes to the log (the last 40 kept for an error)."""
    for line in stream:
        before, prefix, message = line.partition(EVENT_PREFIX)
        if text := before.strip():
            logger.debug("ddp: %s", text)
            tail[:] = [*tail[-39:], text]
        if prefix:
            yield json.loads(message)


def _rank_logs(work: Path) -> list[str]:
    """The last lines the other ranks wrote, for an error nobody reported."""
    lines: list[str] = []
    for log in sorted(work.glob(RANK_LOG.format(rank="*"))):
        last = log.read_text(errors="replace").splitlines()[-5:]
        lines += [f"{log.stem}: {line}" for line in last]
    return lines


def _dispatch(message: dict[str, Any], reporter: Reporter) -> dict[str, Any] | None:
    """Forwards a reporter call; returns the final message (result or error)."""
    if "call" in message:
        getattr(reporter, message["call"])(*message["args"])
        return None
    return message


def _error(result: dict[str, Any] | None, code: int, tail: list[str]) -> Exception:
    """The rank's own error class when it was a domain error, else what the ranks' last
    lines (``tail``) said."""
    if result is not None:
        found = result["error"]
        kind = getattr(errors, found["type"], None)
        if isinstance(kind, type) and issubclass(kind, errors.CoreError):
            return kind(found["message"], param=found.get("param"))
        return RuntimeError(f"DDP training failed: {found['type']}: {found['message']}")
    return RuntimeError(f"DDP training exited {code}: " + " | ".join(tail))

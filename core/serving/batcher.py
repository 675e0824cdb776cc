"""Dynamic micro-batching: concurrent requests for one model share forward passes.

Requests arrive on the event loop (``submit``) and are tokenized on a shared tokenizer pool
(``core.serving.tokens``), where inputs that are too long are refused; a worker thread per
model then encodes queued token rows in steps bounded by a token budget, so that one large
request's tokenization never holds up the forward passes of others. The event loop only
appends to a list and, once per step, receives the finished requests.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

from core import metrics
from core.errors import Overloaded, Transient
from core.models.embedder import Side
from core.serving.model import ServedModel
from core.serving.spec import ServeSpec
from core.serving.tokens import Tokens

log = logging.getLogger("embedtune.serving")


@dataclass(frozen=True)
class Encoded:
    """Embeddings of one request, in input order, and the tokens the model processed."""

    vectors: np.ndarray
    tokens: int


@dataclass
class Stats:
    """Work of one model's batcher: texts tokenized, being tokenized and encoded, and forward
    passes."""

    tokenized: int = 0
    tokenizing: int = 0
    encoded: int = 0
    forward_passes: int = 0


@dataclass(eq=False)
class _Request:
    prepared: Tokens
    side: Side
    future: asyncio.Future[Encoded]
    loop: asyncio.AbstractEventLoop
    arrived: float = field(default_factory=time.monotonic)
    out: np.ndarray = field(default_factory=lambda: np.empty((0, 0), np.float32))
    left: int = 0  # texts not yet encoded
    tokens: int = 0
    settled: bool = False  # seen by the worker thread only


WAIT_SHARE = 0.2  # a filling step waits at most this share of the last step's duration
_Piece = tuple[_Request, int, int]  # request, index of the text, its tokens
_Outcome = tuple[_Request, Encoded | BaseException]


class Batcher:
    """Encodes the texts of concurrent requests for one model together, on its own thread."""

    def __init__(self, model: ServedModel, spec: ServeSpec, tokenizers: Executor) -> None:
        self.model = model
        self.spec = spec
        self.stats = Stats()  # written by the worker thread and the tokenizer pool
        self._tokenizers = tokenizers
        self._cond = threading.Condition()
        self._inbox: list[_Request] = []
        self._queued = 0  # texts submitted (tokenizing or queued) and not yet answered
        self._closed = False
        self._exited = False
        self._pending: dict[Side, deque[_Piece]] = {"query": deque(), "document": deque()}
        self._pending_texts = 0
        self._pending_tokens = 0
        self._last_step = (0, 0.0)  # texts and seconds of the last forward call
        self._thread = threading.Thread(target=self._run, name=f"batcher:{model.key.ref}")
        self._thread.daemon = True

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """Finish what is queued, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    async def submit(self, texts: list[str], side: Side, truncate: bool) -> Encoded:
        """Embeddings of ``texts``, tokenized on the tokenizer pool, then batched with others."""
        loop = asyncio.get_running_loop()
        self._reserve(len(texts))
        try:
            prepared = await loop.run_in_executor(
                self._tokenizers, self._tokenize, texts, side, truncate
            )
            with self._cond:
                if self._exited:
                    raise Transient("the model was just unloaded; retry", code="model_unloaded")
                request = _Request(prepared, side, loop.create_future(), loop)
                self._inbox.append(request)
                self._cond.notify()
        except BaseException:
            with self._cond:
                self._queued -= len(texts)
            raise
        return await request.future

    def _tokenize(self, texts: list[str], side: Side, truncate: bool) -> Tokens:
        with self._cond:
            self.stats.tokenizing += len(texts)
        try:
            return self.model.tokenize(texts, side, truncate)
        finally:
            with self._cond:
                self.stats.tokenizing -= len(texts)
                self.stats.tokenized += len(texts)

    def _reserve(self, texts: int) -> None:
        """Count ``texts`` as queued, or refuse them when the model is gone or its queue full."""
        with self._cond:
            if self._exited:
                raise Transient("the model was just unloaded; retry", code="model_unloaded")
            if self._queued and self._queued + texts > self.spec.max_queue:
                raise Overloaded(
                    f"{self._queued} texts are waiting for model '{self.model.key.ref}'; retry",
                    code="queue_full",
                )
            self._queued += texts

    # worker thread ----------------------------------------------------------------------

    def _run(self) -> None:
        while (arrived := self._next_requests()) is not None:
            self._admit(arrived)
            if self._ready():
                for call in self._calls(self._step()):
                    self._settle(self._encode(call))  # early answers overlap the next call

    def _next_requests(self) -> list[_Request] | None:
        """New requests; blocks while idle and while a step fills (up to the wait window)."""
        with self._cond:
            while not self._inbox:
                if not self._pending_texts:
                    if self._closed:
                        self._exited = True
                        return None
                    self._cond.wait()
                elif self._ready():
                    break
                else:
                    self._cond.wait(max(self._deadline() - time.monotonic(), 0.0))
            arrived, self._inbox = self._inbox, []
            return arrived

    def _deadline(self) -> float:
        oldest = min(q[0][0].arrived for q in self._pending.values() if q)
        return oldest + max(self.spec.batch_wait_ms / 1000, WAIT_SHARE * self._last_step[1])

    def _ready(self) -> bool:
        """Whether to encode now: the queue refilled to the last forward pass's size (one
        client waits for nobody), holds a full pass or budget, or its oldest text waited."""
        return bool(self._pending_texts) and (
            self._closed
            or self._pending_texts >= min(self._last_step[0], self.spec.max_batch_size)
            or self._pending_tokens >= self.spec.max_batch_tokens
            or time.monotonic() >= self._deadline()
        )

    def _admit(self, requests: list[_Request]) -> None:
        """Queue the texts of each request with their token counts."""
        for request in requests:
            lengths = request.prepared.lengths
            request.left, request.tokens = len(lengths), sum(lengths)
            request.out = np.empty((len(lengths), self.model.dim), np.float32)
            self._pending[request.side].extend((request, i, n) for i, n in enumerate(lengths))
            self._pending_texts += len(lengths)
            self._pending_tokens += request.tokens

    def _step(self) -> list[_Piece]:
        """The oldest side's queued texts, first come first served, within the token budget."""
        side = min((s for s in self._pending if self._pending[s]), key=self._head_arrival)
        queue, step, tokens = self._pending[side], [], 0
        while queue and (not step or tokens + queue[0][2] <= self.spec.max_batch_tokens):
            piece = queue.popleft()
            self._pending_texts -= 1
            self._pending_tokens -= piece[2]
            if not piece[0].settled:  # a request that failed or went away earlier
                step.append(piece)
                tokens += piece[2]
        return step

    def _head_arrival(self, side: Side) -> float:
        return self._pending[side][0][0].arrived

    def _calls(self, step: list[_Piece]) -> list[list[_Piece]]:
        """The step's texts sorted by tokens, in forward passes of the model's call size."""
        ordered = sorted(step, key=lambda piece: piece[2], reverse=True)
        size = self.model.call_size
        return [ordered[i : i + size] for i in range(0, len(ordered), size)]

    def _encode(self, step: list[_Piece]) -> list[_Outcome]:
        gone = {r for r, _, _ in step if r.future.cancelled()}  # their clients went away
        step = [p for p in step if p[0] not in gone]
        outcomes: list[_Outcome] = [(r, asyncio.CancelledError()) for r in gone]
        if not step:
            return outcomes
        requests = list(dict.fromkeys(r for r, _, _ in step))
        first = step[0][0]
        started = time.monotonic()
        try:
            rows = [r.prepared.rows[i] for r, i, _ in step]
            vectors = self.model.encode(rows, first.prepared.shared, first.side)
        except Exception as exc:
            log.exception("encoding failed for model %s", self.model.key.ref)
            return outcomes + [(r, exc) for r in requests]
        self._last_step = (len(step), time.monotonic() - started)
        _count(step, first.side, self._last_step[1])
        self.stats.encoded += len(step)
        self.stats.forward_passes += 1
        for (request, i, _), vector in zip(step, vectors, strict=True):
            request.out[i] = vector
            request.left -= 1
        return outcomes + [(r, Encoded(r.out, r.tokens)) for r in requests if r.left == 0]

    def _settle(self, outcomes: Iterable[_Outcome]) -> None:
        """Hand finished requests back to their event loops, one wake-up per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        answered = 0
        for request, result in outcomes:
            request.settled = True
            answered += len(request.prepared.lengths)
            by_loop.setdefault(request.loop, []).append((request, result))
        if not answered:
            return
        with self._cond:
            self._queued -= answered
        for loop, items in by_loop.items():
            try:
                loop.call_soon_threadsafe(_resolve, items)
            except RuntimeError:  # the loop closed: nobody is waiting any more
                continue


def _count(step: list[_Piece], side: Side, seconds: float) -> None:
    """Prometheus counts of one forward pass."""
    metrics.BATCH_SIZE.observe(len(step))
    metrics.FORWARD_SECONDS.observe(seconds)
    metrics.TEXTS_EMBEDDED.labels(side).inc(len(step))
    metrics.TOKENS_EMBEDDED.inc(sum(tokens for _, _, tokens in step))


def _resolve(items: list[_Outcome]) -> None:
    for request, result in items:
        if request.future.done():
            continue
        if isinstance(result, BaseException):
            request.future.set_exception(result)
        else:
            request.future.set_result(result)

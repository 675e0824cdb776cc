"""Questions from an OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, Ollama,
llama.cpp server, TGI), asked through the ``openai`` client.

- Bounded concurrency (``LlmEndpoint.concurrency`` requests in flight), a timeout per request,
  and the client's retries with exponential backoff on 408/409/429/5xx and lost connections
  (honouring ``Retry-After``); an answer that cannot be read (malformed JSON, no choices) is
  asked again up to ``max_retries`` times, then counted as failed for that chunk.
- Resumable: each chunk's answer (questions and tokens, or the failure) is appended to an
  ``AnswerLog`` as it arrives, flushed to disk; a retried, resumed or reclaimed job reads the
  log and asks only for chunks that have no answer there.
- A budget: ``max_tokens`` (prompt + completion) for the whole job; once spent, no more
  chunks are asked. Cancel is checked every 0.2 s while requests are in flight.
- The API key lives in ``LlmEndpoint`` only (hidden from ``repr``): never in a spec, a job
  row, an event, a log line or the answer log.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.datasets.model import Document
from core.synthesis.generators import Candidate
from core.synthesis.prompts import parse_questions, render

POLL_S = 0.2


@dataclass(frozen=True)
class LlmEndpoint:
    base_url: str
    model: str
    api_key: str = field(repr=False)
    timeout: float = 60.0
    max_retries: int = 4
    concurrency: int = 4
    max_completion_tokens: int = 512


@dataclass
class LlmUsage:
    asked: int = 0  # requests answered in this run (resumed answers are not asked again)
    resumed: int = 0  # chunks whose answer was already in the log
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    budget_exhausted: bool = False
    not_asked: int = 0  # chunks left when the budget ran out

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "tokens": self.tokens}


class AnswerLog:
    """Per-chunk answers in a JSON-lines file, appended and flushed one by one."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.answers: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        if path.is_file():
            for line in path.read_text("utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: that chunk is asked again
                self.answers[record["chunk_id"]] = record
        path.parent.mkdir(parents=True, exist_ok=True)

    def add(self, record: dict[str, Any]) -> None:
        with self._lock, self.path.open("a", encoding="utf-8") as out:
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            out.flush()
            os.fsync(out.fileno())
            self.answers[record["chunk_id"]] = record


class LlmGenerator:
    """``chunks -> candidates``: asks the endpoint once per chunk that has no logged answer."""

    def __init__(
        self,
        endpoint: LlmEndpoint,
        *,
        template: str,
        queries_per_chunk: int,
        log: AnswerLog,
        max_tokens: int | None = None,
        check_stop: Callable[[], None] = lambda: None,
        on_answer: Callable[[int, int, LlmUsage], None] | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.template = template
        self.count = queries_per_chunk
        self.log = log
        self.max_tokens = max_tokens
        self.check_stop = check_stop  # raises when the job must stop (cancel, lost lease)
        self.on_answer = on_answer
        self.usage = LlmUsage()
        self._stopped = False

    def __call__(self, chunks: list[Document]) -> list[Candidate]:
        from openai import OpenAI

        for record in self.log.answers.values():
            self.usage.prompt_tokens += record.get("prompt_tokens", 0)
            self.usage.completion_tokens += record.get("completion_tokens", 0)
        todo = [c for c in chunks if c.id not in self.log.answers]
        self.usage.resumed = len(chunks) - len(todo)
        client = OpenAI(
            base_url=self.endpoint.base_url,
            api_key=self.endpoint.api_key,
            timeout=self.endpoint.timeout,
            max_retries=self.endpoint.max_retries,
        )
        try:
            self._ask_all(client, todo, len(chunks))
        finally:
            client.close()
        return self._candidates(chunks)

    def _ask_all(self, client: Any, todo: list[Document], total: int) -> None:
        pool = ThreadPoolExecutor(self.endpoint.concurrency, thread_name_prefix="llm")
        pending: set[Future[None]] = set()
        queue = list(reversed(todo))
        try:
            while queue or pending:
                while queue and len(pending) < self.endpoint.concurrency and self._in_budget():
                    pending.add(pool.submit(self._ask, client, queue.pop()))
                if not pending:
                    self.usage.budget_exhausted = True
                    self.usage.not_asked = len(queue)
                    return
                done, pending = wait(pending, timeout=POLL_S, return_when=FIRST_COMPLETED)
                for future in done:
                    future.result()
                    if self.on_answer:
                        self.on_answer(len(self.log.answers), total, self.usage)
                self.check_stop()
        finally:
            self._stopped = True  # answers arriving after this are not logged
            pool.shutdown(wait=False, cancel_futures=True)

    def _in_budget(self) -> bool:
        return self.max_tokens is None or self.usage.tokens < self.max_tokens

    def _ask(self, client: Any, chunk: Document) -> None:
        prompt = render(self.template, chunk.full_text, self.count)
        record: dict[str, Any] = {"chunk_id": chunk.id, "questions": []}
        for attempt in range(self.endpoint.max_retries + 1):
            try:
                response = client.chat.completions.create(
                    model=self.endpoint.model,
                    messages=[{"role": "user", "content": prompt}],
                    temperature=0,
                    max_tokens=self.endpoint.max_completion_tokens,
                )
                content = response.choices[0].message.content
                if not isinstance(content, str):
                    raise ValueError("the answer has no text")
            except Exception as exc:
                if _retryable(exc) and attempt < self.endpoint.max_retries:
                    time.sleep(min(0.5 * 2**attempt, 8.0))
                    continue
                record["error"] = type(exc).__name__
                break
            usage = response.usage
            record.update(
                questions=parse_questions(content, self.count),
                prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            )
            break
        if self._stopped:
            return
        self.log.add(record)
        self.usage.asked += 1
        self.usage.failed += "error" in record
        self.usage.prompt_tokens += record.get("prompt_tokens", 0)
        self.usage.completion_tokens += record.get("completion_tokens", 0)

    def _candidates(self, chunks: list[Document]) -> list[Candidate]:
        return [
            Candidate(question, (chunk.id,), "llm")
            for chunk in chunks
            for question in self.log.answers.get(chunk.id, {}).get("questions", [])
        ]


def _retryable(exc: Exception) -> bool:
    """Answers that could not be read: the client already retried HTTP errors itself."""
    import openai

    if isinstance(exc, openai.APIStatusError | openai.APIConnectionError):
        return False  # retried by the client with backoff; what is left is final
    return isinstance(exc, ValueError | TypeError | IndexError | AttributeError | openai.APIError)

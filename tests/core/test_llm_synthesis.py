"""The LLM generator against a real chat-completions server on loopback, through the real
``openai`` client: retries, malformed answers, concurrency, budget, resume, cancel, secrets."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.datasets.model import Document, RetrievalDataset
from core.errors import Cancelled
from core.services.documents import run_synthesis
from core.settings import Settings
from core.synthesis.llm import AnswerLog, LlmEndpoint, LlmGenerator
from core.synthesis.prompts import CHINESE, ENGLISH, language_of, parse_questions
from core.synthesis.spec import SynthesisSpec
from tests.llm_server import ChatServer

KEY = "sk-test-secret-1234"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer(slow_seconds=0.6)
    chat.url = chat.start()  # type: ignore[attr-defined]
    yield chat
    chat.stop()


def chunks(n: int, trouble: dict[int, str] | None = None) -> list[Document]:
    trouble = trouble or {}
    return [
        Document(
            f"d{i}#0",
            f"chunk-{i} reports finding {i} about topic {i % 4}. {trouble.get(i, '')}",
            metadata={"doc_id": f"d{i}"},
        )
        for i in range(n)
    ]


def generator(server: ChatServer, log: Path, **kwargs) -> LlmGenerator:
    endpoint = LlmEndpoint(
        server.url,
        "test-llm",
        KEY,
        timeout=5,
        max_retries=2,  # type: ignore[attr-defined]
        concurrency=kwargs.pop("concurrency", 3),
    )
    return LlmGenerator(
        endpoint,
        template=kwargs.pop("template", ENGLISH),
        queries_per_chunk=kwargs.pop("queries_per_chunk", 2),
        log=AnswerLog(log),
        **kwargs,
    )


def test_questions_come_back_per_chunk_through_retries_and_bad_answers(
    server: ChatServer, tmp_path: Path
) -> None:
    docs = chunks(8, {1: "[429]", 2: "[500]", 3: "[malformed]", 4: "[always-malformed]"})
    llm = generator(server, tmp_path / "answers.jsonl")
    made = llm(docs)
    assert {c.chunk_ids[0] for c in made} == {d.id for d in docs} - {"d4#0"}
    assert all(c.generator == "llm" for c in made) and len(made) == 2 * 7
    assert made[0].text == "what does chunk-0 report about finding 0"  # numbering removed
    assert llm.usage.failed == 1 and llm.usage.asked == 8
    assert llm.usage.prompt_tokens > 0 and llm.usage.completion_tokens == 7 * 2 * 7
    statuses = [r.status for r in server.requests if r.chunk == "chunk-1"]
    assert statuses == [429, 200]  # retried by the client after Retry-After
    assert [r.status for r in server.requests if r.chunk == "chunk-2"] == [500, 200]
    assert len([r for r in server.requests if r.chunk == "chunk-4"]) == 3  # 1 + 2 retries
    assert server.max_in_flight <= 3


def test_a_second_run_asks_nothing_twice(server: ChatServer, tmp_path: Path) -> None:
    log = tmp_path / "answers.jsonl"
    docs = chunks(6)
    first = generator(server, log, max_tokens=1)(docs)  # the budget stops it early
    asked_first = len(server.requests)
    assert 1 <= asked_first < 6 and len(first) == 2 * asked_first
    second = generator(server, log)
    again = second(docs)
    assert server.answered() == {f"chunk-{i}": 1 for i in range(6)}
    assert second.usage.resumed == asked_first and second.usage.asked == 6 - asked_first
    assert len(again) == 12
    third = generator(server, log)
    third(docs)
    assert len(server.requests) == 6 and third.usage.asked == 0  # all answers were logged


def test_the_budget_stops_asking_and_says_so(server: ChatServer, tmp_path: Path) -> None:
    llm = generator(server, tmp_path / "a.jsonl", concurrency=1, max_tokens=80)
    llm(chunks(10))
    assert llm.usage.budget_exhausted and llm.usage.not_asked > 0
    assert llm.usage.asked + llm.usage.not_asked == 10
    assert llm.usage.tokens >= 80


def test_cancel_stops_within_a_second_while_requests_are_slow(
    server: ChatServer, tmp_path: Path
) -> None:
    server.slow_seconds = 30
    deadline = time.monotonic() + 0.5

    def check_stop() -> None:
        if time.monotonic() > deadline:
            raise Cancelled("job stopped: cancel")

    llm = generator(server, tmp_path / "a.jsonl", check_stop=check_stop)
    started = time.monotonic()
    with pytest.raises(Cancelled):
        llm(chunks(4, {i: "[slow]" for i in range(4)}))
    assert time.monotonic() - started < 1.5
    assert AnswerLog(tmp_path / "a.jsonl").answers == {}  # nothing half-answered was kept


def test_synthesis_with_the_operators_endpoint_never_shows_the_key(
    server: ChatServer, tmp_path: Path
) -> None:
    settings = Settings(
        data_dir=tmp_path / "var",
        llm_base_url=server.url,  # type: ignore[attr-defined]
        llm_model="test-llm",
        llm_api_key=KEY,
    )
    assert KEY not in repr(settings) and KEY not in str(settings.model_dump())
    corpus = RetrievalDataset({d.id: d for d in chunks(20)}, {})
    spec = SynthesisSpec(generators=("llm",), queries_per_chunk=2, round_trip_k=0)
    ds, report = run_synthesis(
        settings, corpus, spec, embedder=None, answers=tmp_path / "answers.jsonl"
    )
    assert report.candidates == {"llm": 40}
    assert report.llm["asked"] == 20 and report.llm["tokens"] > 0
    assert report.llm["model"] == "test-llm"
    assert sum(len(q) for q in ds.qrels.values()) == 40 - sum(report.removed.values())
    written = (tmp_path / "answers.jsonl").read_text() + repr(report.as_dict())
    assert KEY not in written


def test_templates_and_parsing() -> None:
    assert "{context_str}" in ENGLISH and "{num_questions_per_chunk}" in CHINESE
    assert language_of(["胰岛素可以降低血糖。", "一型糖尿病"]) == "zh"
    assert language_of(["Insulin lowers blood sugar."]) == "en"
    answer = "1. What is A?\n2) What is B?\n\n- What is C?\nQuestion 4: What is D?"
    assert parse_questions(answer, 3) == ["What is A?", "What is B?", "What is C?"]
    assert parse_questions("问题1：胰岛素的作用是什么？", 2) == ["胰岛素的作用是什么？"]

"""The serving engine without HTTP: micro-batching, single-flight loads, LRU, queue limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from core.errors import NotFound, Overloaded, TooLarge
from core.models.embedder import Embedder, load_embedder
from core.serving import Engine, ModelKey, ServeSpec

T = TypeVar("T")
TEXTS = [f"query number {i} about topic {i % 4}" for i in range(20)]
SIDES = ("query", "document")


@dataclass
class CountingEmbedder(Embedder):
    """Records the size of every forward pass; ``gate`` holds each pass until it is set."""

    calls: list[int] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def encode_features(self, features, side):  # type: ignore[override]
        self.gate.wait(10)
        self.calls.append(len(features["input_ids"]))
        return super().encode_features(features, side)


@pytest.fixture(scope="module")
def base(tiny_model_dir: Path) -> Embedder:
    return load_embedder(str(tiny_model_dir))


class Loader:
    """Loads ``base`` under any reference; "missing" is unknown, "flaky" fails once."""

    def __init__(self, base: Embedder, *, gated: bool = False) -> None:
        self.base, self.gated = base, gated
        self.refs: list[str] = []
        self.made: list[CountingEmbedder] = []

    def __call__(self, key: ModelKey) -> CountingEmbedder:
        self.refs.append(key.ref)
        if key.ref == "missing" or (key.ref == "flaky" and self.refs.count("flaky") == 1):
            raise NotFound("no such model", code="model_not_found", param="model")
        base = self.base
        embedder = CountingEmbedder(base.model, base.st, f"{base.fingerprint}-{key.ref}")
        if not self.gated:
            embedder.gate.set()
        self.made.append(embedder)
        return embedder


def run(engine: Engine, coro: Coroutine[Any, Any, T]) -> T:
    async def main() -> T:
        try:
            return await coro
        finally:
            engine.close()

    return asyncio.run(main())


def test_concurrent_requests_share_forward_passes(base: Embedder) -> None:
    load = Loader(base)
    engine = Engine(ServeSpec(batch_wait_ms=50), load)

    async def many():
        return await asyncio.gather(*(engine.embed(ModelKey("a"), [t]) for t in TEXTS))

    answers = run(engine, many())
    assert load.refs == ["a"]  # one load for twenty concurrent requests
    calls = load.made[0].calls
    assert sum(calls) == len(TEXTS) and len(calls) < len(TEXTS) / 2
    got = np.stack([a.vectors[0] for a in answers])
    np.testing.assert_allclose(got, base.encode(TEXTS, "document"), atol=1e-5)


def test_token_budget_splits_a_step(base: Embedder) -> None:
    load = Loader(base)
    engine = Engine(ServeSpec(max_batch_tokens=40), load)
    encoded = run(engine, engine.embed(ModelKey("a"), TEXTS))
    assert len(load.made[0].calls) > 1 and max(load.made[0].calls) <= 5  # ~9 tokens a text
    np.testing.assert_allclose(encoded.vectors, base.encode(TEXTS, "document"), atol=1e-5)


def test_failed_load_is_retried_and_unknown_models_raise(base: Embedder) -> None:
    load = Loader(base)
    engine = Engine(ServeSpec(), load)

    async def attempts():
        for ref in ("missing", "flaky"):
            with pytest.raises(NotFound):
                await engine.embed(ModelKey(ref), ["x"])
        return await engine.embed(ModelKey("flaky"), ["x"])

    assert run(engine, attempts()).vectors.shape == (1, 32)
    assert load.refs == ["missing", "flaky", "flaky"]


def test_least_recently_used_model_is_unloaded_past_the_budget(base: Embedder) -> None:
    one_model = sum(p.numel() * p.element_size() for p in base.st.parameters()) + 1024
    load = Loader(base)
    engine = Engine(ServeSpec(model_memory_bytes=one_model), load)

    async def alternate():
        for ref in ("a", "a", "b", "b", "a"):
            await engine.embed(ModelKey(ref), ["x"])

    run(engine, alternate())
    assert load.refs == ["a", "b", "a"]


def test_a_full_queue_answers_overloaded(base: Embedder) -> None:
    load = Loader(base, gated=True)
    engine = Engine(ServeSpec(max_queue=3, batch_wait_ms=0), load)
    key = ModelKey("a")

    async def flood():
        first = asyncio.ensure_future(engine.embed(key, ["a", "b"]))
        while not load.made:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)  # loaded; the worker holds the first request at the gate
        with pytest.raises(Overloaded) as refused:
            await engine.embed(key, ["c", "d"])
        load.made[0].gate.set()
        return refused.value, await first

    refused, first = run(engine, flood())
    assert refused.code == "queue_full" and first.vectors.shape == (2, 32)


def test_an_input_over_the_character_bound_is_refused_before_any_model_work(
    base: Embedder,
) -> None:
    load = Loader(base)
    engine = Engine(ServeSpec(max_input_chars=1000), load)
    key, long = ModelKey("a"), "protein folding " * 100  # 1600 characters

    async def attempts():
        await engine.embed(key, ["warm"])
        before = engine.stats()[key]
        with pytest.raises(TooLarge) as refused:
            await engine.embed(key, ["ok", long], truncate=False)
        after = engine.stats()[key]
        cut = await engine.embed(key, ["ok", long], truncate=True)
        return refused.value, before, after, cut

    refused, before, after, cut = run(engine, attempts())
    assert (refused.code, refused.param) == ("input_too_long", "input[1]")
    assert "1600 characters" in refused.message and '"truncate": true' in refused.message
    assert after == before and before.tokenized == before.encoded == 1  # the warm-up only
    np.testing.assert_allclose(cut.vectors, base.encode(["ok", long[:1000]], "document"), atol=1e-5)


def test_a_short_request_is_answered_while_a_large_one_is_tokenized(base: Embedder) -> None:
    engine = Engine(ServeSpec(), Loader(base))
    key, finished = ModelKey("a"), []
    large = ["protein folding in yeast cells " * 1000] * 300  # 9 MB, each text within the bound

    async def tracked(name: str, texts: list[str]):
        encoded = await engine.embed(key, texts, truncate=True)
        finished.append((name, engine.stats()[key].tokenizing))
        return encoded

    async def race():
        await engine.embed(key, ["warm"])
        big = asyncio.ensure_future(tracked("large", large))
        while engine.stats()[key].tokenizing < len(large):
            await asyncio.sleep(0.001)
        return await tracked("short", ["a short query"]), await big

    short, big = run(engine, race())
    assert finished == [("short", len(large)), ("large", 0)]  # the large one still tokenizing
    np.testing.assert_allclose(short.vectors, base.encode(["a short query"], "document"), atol=1e-5)
    assert big.vectors.shape == (300, 32) and big.tokens == 300 * 64


def test_per_side_maximum_lengths_are_served_as_encode_gives_them(tiny_model_dir: Path) -> None:
    embedder = load_embedder(str(tiny_model_dir))
    embedder.st[0].query_length = 8  # queries are cut shorter than documents
    engine = Engine(ServeSpec(), lambda key: embedder)
    texts = [f"{t} and a few more words" for t in TEXTS]

    async def both_sides():
        return await asyncio.gather(
            *(engine.embed(ModelKey("a"), [t], side=side) for t in texts for side in SIDES)
        )

    answers = run(engine, both_sides())
    for side, start in zip(SIDES, (0, 1), strict=True):
        got = np.stack([a.vectors[0] for a in answers[start::2]])
        np.testing.assert_allclose(got, embedder.encode(texts, side), atol=1e-5)
    assert {a.tokens for a in answers[0::2]} == {8}

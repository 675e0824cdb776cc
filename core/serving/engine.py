"""The serving engine: loaded models and indexes, batched encoding and search; no web framework."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import numpy as np

from core import metrics
from core.errors import Conflict, InvalidInput, TooLarge
from core.models.embedder import Embedder, Side
from core.models.multi_vector import MultiVectorEmbedder
from core.reranking.reranker import Reranker
from core.serving.batcher import Batcher, Encoded, Stats
from core.serving.lru import LoadingLRU
from core.serving.model import ServedModel
from core.serving.multi_vector import ServedMultiVector
from core.serving.reranker import ServedReranker
from core.serving.search import Hit, ServedIndex
from core.serving.spec import TRUNCATE_HINT, ModelKey, ServeSpec
from core.serving.token_ids import refused
from core.serving.vectors import shorten

LoadModel = Callable[[ModelKey], Embedder | MultiVectorEmbedder]
"""Loads the model a key names (runs on a thread); raises ``NotFound`` for an unknown one."""
LoadReranker = Callable[[ModelKey], Reranker]
"""Loads the cross-encoder a ``task="rerank"`` key names, like ``LoadModel``."""


class Engine:
    """Embeds texts and searches indexes for many concurrent callers on one event loop.

    Example:
        engine = Engine(ServeSpec(), lambda key: load_embedder(key.ref, **key.overrides))
        encoded = await engine.embed(ModelKey("sentence-transformers/all-MiniLM-L6-v2"), ["hi"])
    """

    def __init__(
        self, spec: ServeSpec, load_model: LoadModel, load_reranker: LoadReranker | None = None
    ) -> None:
        self.spec = spec
        self._load_model = load_model
        self._load_reranker = load_reranker
        self._models: LoadingLRU[ModelKey, Batcher] = LoadingLRU(
            spec.model_memory_bytes, lambda b: b.model.nbytes, _unload
        )
        # late-interaction models share the model budget's size, in their own LRU
        self._late: LoadingLRU[ModelKey, ServedMultiVector] = LoadingLRU(
            spec.model_memory_bytes, lambda m: m.nbytes
        )
        self._indexes: LoadingLRU[str, ServedIndex] = LoadingLRU(
            spec.index_memory_bytes, lambda i: i.nbytes
        )
        self._tokenizers = ThreadPoolExecutor(spec.tokenizer_threads, "embedtune-tokenize")

    async def embed(
        self,
        key: ModelKey,
        texts: list[str],
        *,
        side: Side = "document",
        truncate: bool | None = None,
        dimensions: int | None = None,
    ) -> Encoded:
        """Embeddings of ``texts`` in order; ``dimensions`` keeps the first ones, renormalized.
        Inputs over ``max_input_chars`` are refused before any model work, or cut to it;
        ``truncate`` None takes the spec's default for the model."""
        self._check_count(texts)
        if truncate is None:
            truncate = self.spec.truncates(key.ref)
        texts = self._bounded(texts, truncate)
        batcher = await self._batcher(key)
        dim = batcher.model.dim
        if dimensions is not None and not 1 <= dimensions <= dim:
            raise InvalidInput(
                f"dimensions must be between 1 and {dim} for model '{key.ref}'",
                code="invalid_dimensions",
                param="dimensions",
            )
        encoded = await batcher.submit(texts, side, truncate)
        if dimensions is None or dimensions == dim:
            return encoded
        return Encoded(shorten(encoded.vectors, dimensions), encoded.tokens)

    async def rerank(
        self, key: ModelKey, query: str, documents: list[str], *, truncate: bool | None = None
    ) -> Encoded:
        """One score per document for ``query`` (a column, in document order), batched with
        concurrent requests for the same reranker; limits as ``embed`` (inputs, characters)."""
        self._check_count(documents, "documents")
        if truncate is None:
            truncate = self.spec.truncates(key.ref)
        (query,) = self._bounded([query], truncate, "query")
        documents = self._bounded(documents, truncate, "documents")
        batcher = await self._batcher(replace(key, task="rerank"))
        return await batcher.submit([(query, d) for d in documents], "document", truncate)

    async def embed_tokens(
        self,
        key: ModelKey,
        texts: list[str],
        *,
        side: Side = "document",
        truncate: bool | None = None,
    ) -> tuple[list[np.ndarray], int]:
        """A late-interaction model's token vectors of each text, and the tokens read;
        ``InvalidInput`` (``not_multi_vector``) for a model that gives one vector per text."""
        self._check_count(texts)
        if truncate is None:
            truncate = self.spec.truncates(key.ref)
        texts = self._bounded(texts, truncate)
        model = await self._late.get(
            key, lambda: ServedMultiVector.wrap(key, self._load_model(key))
        )
        return await asyncio.to_thread(model.encode, texts, side, truncate)

    async def score_pairs(
        self, key: ModelKey, queries: list[str], documents: list[str]
    ) -> tuple[list[float], int]:
        """MaxSim scores of (query, document) pairs with a late-interaction model."""
        self._check_count(queries)
        texts = self._bounded([*queries, *documents], True)
        model = await self._late.get(
            key, lambda: ServedMultiVector.wrap(key, self._load_model(key))
        )
        n = len(queries)
        return await asyncio.to_thread(model.score, texts[:n], texts[n:])

    async def decode(self, key: ModelKey, inputs: list[list[int]]) -> list[str]:
        """Texts of token ids in the model's own vocabulary (special tokens left out)."""
        batcher = await self._batcher(key)
        size = batcher.model.tokenizer.get_vocab_size()
        for i, ids in enumerate(inputs):
            if max(ids) >= size:
                raise refused(i, f"include ids beyond the model's vocabulary of {size}")
        return batcher.model.tokenizer.decode_batch(inputs, skip_special_tokens=True)

    async def search(
        self, index_id: str, load: Callable[[], ServedIndex], queries: list[str], top_k: int
    ) -> tuple[list[list[Hit]], int]:
        """Top ``top_k`` documents per query, from the index loaded once by ``load``; and the
        tokens the queries took. Queries are encoded on the query side, truncated if long."""
        index = await self._indexes.get(index_id, load)
        if index.multi_vector:
            return await self._search_tokens(index_id, index, queries, top_k)
        batcher = await self._batcher(index.model)
        if batcher.model.embedder.fingerprint != index.fingerprint:
            raise _model_changed(index_id, index)
        encoded = await self.embed(index.model, queries, side="query", truncate=True)
        hits = await asyncio.to_thread(index.search, encoded.vectors, top_k)
        metrics.SEARCH_QUERIES.inc(len(queries))
        return hits, encoded.tokens

    async def _search_tokens(
        self, index_id: str, index: ServedIndex, queries: list[str], top_k: int
    ) -> tuple[list[list[Hit]], int]:
        key = index.model
        model = await self._late.get(
            key, lambda: ServedMultiVector.wrap(key, self._load_model(key))
        )
        if model.embedder.fingerprint != index.fingerprint:
            raise _model_changed(index_id, index)
        vectors, tokens = await self.embed_tokens(key, queries, side="query", truncate=True)
        return await asyncio.to_thread(index.search, vectors, top_k), tokens

    def stats(self) -> dict[ModelKey, Stats]:
        """The work each loaded model did so far."""
        return {b.model.key: replace(b.stats) for b in self._models.values()}

    def close(self) -> None:
        """Stop every model's worker after the work it has queued."""
        batchers = self._models.values()
        self._models.clear()
        self._late.clear()
        for batcher in batchers:
            batcher.join(timeout=5)
        self._tokenizers.shutdown(wait=False, cancel_futures=True)

    def _check_count(self, texts: list, field: str = "input") -> None:
        if not texts:
            raise InvalidInput(f"{field} is empty", code="empty_input", param=field)
        if len(texts) > self.spec.max_inputs:
            noun = "inputs" if field == "input" else field
            raise TooLarge(
                f"{len(texts)} {noun} in one request; at most {self.spec.max_inputs}",
                code="too_many_inputs",
                param=field,
            )

    def _bounded(self, texts: list[str], truncate: bool, field: str = "input") -> list[str]:
        bound = self.spec.max_input_chars
        if truncate:
            return [t[:bound] for t in texts]
        for i, text in enumerate(texts):
            if len(text) > bound:
                raise TooLarge(
                    f"{field.removesuffix('s')} {i} has {len(text)} characters, more than the "
                    f"{bound} this server takes; {TRUNCATE_HINT}",
                    code="input_too_long",
                    param=f"{field}[{i}]",
                )
        return texts

    async def _batcher(self, key: ModelKey) -> Batcher:
        batcher = await self._models.get(key, lambda: self._start(key))
        if not batcher.model.path.is_dir():  # deleted since it was loaded
            self._models.evict(key)
            batcher = await self._models.get(key, lambda: self._start(key))
        return batcher

    def _start(self, key: ModelKey) -> Batcher:
        served: ServedModel | ServedReranker
        if key.task == "rerank":
            if self._load_reranker is None:
                raise InvalidInput("this server does not rerank", code="unsupported_model")
            served = ServedReranker.wrap(key, self._load_reranker(key), self.spec)
        else:
            embedder = self._load_model(key)
            if isinstance(embedder, MultiVectorEmbedder):
                raise InvalidInput(
                    f"model '{key.ref}' is a late-interaction (ColBERT) model: it gives token "
                    'vectors; send "output": "multi_vector"',
                    code="multi_vector_model",
                    param="output",
                )
            served = ServedModel.wrap(key, embedder, self.spec)
        batcher = Batcher(served, self.spec, self._tokenizers)  # type: ignore[arg-type]
        batcher.start()
        metrics.MODELS_LOADED.inc()
        return batcher


def _unload(batcher: Batcher) -> None:
    """An evicted model (memory budget, deleted, or the engine closing) stops its worker."""
    metrics.MODEL_EVICTIONS.inc()
    metrics.MODELS_LOADED.dec()
    batcher.close()


def _model_changed(index_id: str, index: ServedIndex) -> Conflict:
    return Conflict(
        f"index '{index_id}' was built with another version of model "
        f"'{index.model.ref}'; build the index again",
        code="index_model_changed",
        param="index_id",
    )

"""Split documents into chunks that fit the target model, measured in its own tokens.

semantic-text-splitter does the splitting: it counts with the model's Hugging Face tokenizer,
prefers the largest semantic unit that fits (paragraphs, then sentences, then words), overlaps
in tokens and returns character offsets, in Rust (fast on a whole corpus). A chunk's budget
is the model's max sequence length less the instruction, special tokens and the document's
title (a chunk is encoded as ``title + " " + text``); every chunk is measured again as encoded,
and a document whose chunks still overflow is split again with a smaller capacity.
"""

from __future__ import annotations

from dataclasses import dataclass

from core.errors import InvalidInput
from core.ingest.tokens import ModelTokens

DEFAULT_OVERLAP = 20  # tokens; llama-index's SentenceSplitter default
MIN_CAPACITY = 16
MAX_TITLE_SHARE = 0.5  # a title longer than this share of the budget is not repeated per chunk


@dataclass(frozen=True)
class ChunkSpec:
    """``max_tokens`` per encoded chunk (None: the model's max sequence length);
    ``overlap_tokens`` shared by neighbouring chunks."""

    max_tokens: int | None = None
    overlap_tokens: int = DEFAULT_OVERLAP

    def __post_init__(self) -> None:
        if self.max_tokens is not None and self.max_tokens < MIN_CAPACITY:
            raise InvalidInput(f"max_tokens must be at least {MIN_CAPACITY}", param="max_tokens")
        if self.overlap_tokens < 0 or (
            self.max_tokens is not None and self.overlap_tokens >= self.max_tokens // 2
        ):
            raise InvalidInput(
                "overlap_tokens must be >= 0 and under half of max_tokens", param="overlap_tokens"
            )


@dataclass(frozen=True)
class Span:
    """A chunk: ``text == document_text[start:end]``; ``tokens`` as encoded (title included)."""

    start: int
    end: int
    text: str
    tokens: int


class Chunker:
    """Chunks texts for one model; ``limit`` is the encoded-length bound every chunk keeps."""

    def __init__(self, tokens: ModelTokens, spec: ChunkSpec = ChunkSpec()) -> None:
        self.tokens = tokens
        self.spec = spec
        self.limit = min(spec.max_tokens or tokens.max_seq_length, tokens.max_seq_length)
        if self.limit - tokens.overhead < MIN_CAPACITY:
            raise InvalidInput(
                f"the model's limit ({self.limit} tokens) leaves no room after the instruction",
                param="max_tokens",
            )
        self._splitters: dict[int, object] = {}

    def title_fits(self, title: str) -> bool:
        """Whether ``title`` is short enough to be repeated in every chunk."""
        budget = self.limit - self.tokens.overhead
        return bool(title) and self._raw(title + " ") <= budget * MAX_TITLE_SHARE

    def split(self, text: str, title: str = "") -> list[Span]:
        """Chunks of ``text`` whose ``title + " " + chunk`` (or the chunk alone) fits ``limit``."""
        prefix = f"{title} " if title else ""
        capacity = self.limit - self.tokens.overhead - (self._raw(prefix) if title else 0)
        while True:
            spans = self._spans(text, prefix, capacity)
            over = max((s.tokens - self.limit for s in spans), default=0)
            if over <= 0:
                return spans
            capacity -= max(over, 1)  # boundary effects of tokenizing the joined text
            if capacity < MIN_CAPACITY:
                raise InvalidInput("a chunk cannot be made to fit the model's limit")

    def _spans(self, text: str, prefix: str, capacity: int) -> list[Span]:
        found = self._splitter(capacity).chunk_indices(text)
        counts = self.tokens.counts([prefix + chunk for _, chunk in found])
        return [
            Span(start, start + len(chunk), chunk, n)
            for (start, chunk), n in zip(found, counts, strict=True)
        ]

    def _splitter(self, capacity: int):  # -> semantic_text_splitter.TextSplitter
        from semantic_text_splitter import TextSplitter

        if capacity not in self._splitters:
            overlap = min(self.spec.overlap_tokens, capacity // 2 - 1)
            self._splitters[capacity] = TextSplitter.from_huggingface_tokenizer(
                self.tokens.tokenizer, capacity=capacity, overlap=max(overlap, 0)
            )
        return self._splitters[capacity]

    def _raw(self, text: str) -> int:
        """Tokens of ``text`` alone (no special tokens, no instruction)."""
        return len(self.tokens.tokenizer.encode(text, add_special_tokens=False).ids)

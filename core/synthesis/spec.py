"""What a synthesis is asked to do (``SynthesisSpec``), with the defaults measured on SciFact."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from core.errors import InvalidInput
from core.synthesis.filters import FilterSpec
from core.synthesis.splits import SplitSpec

Generator = Literal["title", "inverse_cloze", "crop", "llm"]
Language = Literal["auto", "en", "zh"]


@dataclass(frozen=True)
class SynthesisSpec:
    """Generators run in order over the chunks; filters then split by source document.

    ``generators``: offline ``title`` / ``inverse_cloze`` / ``crop``, or ``llm`` (the
    operator's chat-completions endpoint). The default, ``inverse_cloze``, makes queries for
    any corpus (``title`` needs titled documents) and lost least on the whole SciFact corpus
    (see docs/raw-documents.md). ``max_chunks`` caps the chunks queries are made for (a seeded
    sample; the corpus stays whole), ``max_tokens`` the LLM tokens a job may spend.
    ``prompt_template`` overrides the language's default and must hold ``{context_str}`` and
    ``{num_questions_per_chunk}`` (llama-index templates work as they are).
    """

    generators: tuple[Generator, ...] = ("inverse_cloze",)
    queries_per_chunk: int = 1
    max_chunks: int | None = None
    max_tokens: int | None = None
    language: Language = "auto"
    prompt_template: str | None = None
    min_words: int = 3
    max_words: int = 64
    max_copy_overlap: float = 0.8
    check_language: bool = True
    round_trip_k: int = 10
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.generators or len(set(self.generators)) != len(self.generators):
            raise InvalidInput(
                "generators must name at least one generator, each once", param="generators"
            )
        checks = (
            ("queries_per_chunk", 1 <= self.queries_per_chunk <= 20),
            ("max_chunks", self.max_chunks is None or self.max_chunks >= 1),
            ("max_tokens", self.max_tokens is None or self.max_tokens >= 1),
            ("min_words", 0 <= self.min_words <= self.max_words),
            ("max_words", 1 <= self.max_words <= 1000),
            ("max_copy_overlap", 0 <= self.max_copy_overlap <= 1),
            ("round_trip_k", 0 <= self.round_trip_k <= 1000),
            ("val_fraction", 0 <= self.val_fraction < 1),
            ("test_fraction", 0 <= self.test_fraction < 1),
            ("test_fraction", self.val_fraction + self.test_fraction < 1),
        )
        for name, ok in checks:
            if not ok:
                raise InvalidInput(f"{name} is out of range", param=name)
        template = self.prompt_template
        if template is not None and "{context_str}" not in template:
            raise InvalidInput(
                "prompt_template must contain {context_str}", param="prompt_template"
            )

    @property
    def filters(self) -> FilterSpec:
        return FilterSpec(
            self.min_words,
            self.max_words,
            self.max_copy_overlap,
            self.check_language,
            self.round_trip_k,
        )

    @property
    def split(self) -> SplitSpec:
        return SplitSpec(self.val_fraction, self.test_fraction, self.seed)

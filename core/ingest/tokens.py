"""The target model's tokenizer and length budget, loaded without the network itself."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InvalidInput

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from core.models.resolve import ResolvedModel

FALLBACK_MAX_LENGTH = 512


@dataclass
class ModelTokens:
    """Counts a document's tokens as the model sees them: document instruction and special
    tokens included, no truncation. ``max_seq_length`` is the model's limit."""

    tokenizer: Tokenizer
    max_seq_length: int
    instruction: str = ""

    def count(self, text: str) -> int:
        return len(self.tokenizer.encode(self.instruction + text).ids)

    def counts(self, texts: list[str]) -> list[int]:
        encoded = self.tokenizer.encode_batch([self.instruction + t for t in texts])
        return [len(e.ids) for e in encoded]

    @property
    def overhead(self) -> int:
        """Tokens every document spends before its text: instruction and special tokens."""
        return self.count("")


def model_tokens(model: ResolvedModel) -> ModelTokens:
    """The tokenizer (``tokenizer.json``) and limits of a resolved model."""
    from tokenizers import Tokenizer

    path = Path(model.path) / "tokenizer.json"
    if not path.is_file():
        raise InvalidInput(
            f"model '{model.ref}' has no tokenizer.json (a fast tokenizer is needed to chunk)",
            code="no_tokenizer",
            param="model",
        )
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    limit = model.config.max_seq_length or _own_max_length(Path(model.path))
    return ModelTokens(tokenizer, limit, model.config.document_instruction)


def _own_max_length(model_dir: Path) -> int:
    """sentence-transformers' ``max_seq_length``, else the tokenizer's ``model_max_length``."""
    for name, key in (
        ("sentence_bert_config.json", "max_seq_length"),
        ("tokenizer_config.json", "model_max_length"),
    ):
        path = model_dir / name
        if path.is_file():
            value = json.loads(path.read_text("utf-8")).get(key)
            if isinstance(value, int) and 0 < value < 1_000_000:
                return value
    return FALLBACK_MAX_LENGTH

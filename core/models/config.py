"""Per-model retrieval settings (instructions, max length, normalization), stored with the model."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

CONFIG_FILE = "embedtune.json"

# Instructions the model authors recommend, by model name pattern (first match wins).
KNOWN_INSTRUCTIONS: tuple[tuple[str, str, str], ...] = (
    (r"bge-.*-zh", "为这个句子生成表示以用于检索相关文章：", ""),
    (r"bge-(small|base|large)-en", "Represent this sentence for searching relevant passages: ", ""),
    (r"(^|/)(multilingual-)?e5-", "query: ", "passage: "),
)


@dataclass(frozen=True)
class ModelConfig:
    """How a model is used for retrieval; the same settings serve training, eval and serving."""

    query_instruction: str = ""
    document_instruction: str = ""
    max_seq_length: int | None = None  # None keeps the model's own limit
    normalize: bool = True

    def with_overrides(self, **overrides: Any) -> ModelConfig:
        """A copy where every override that is not None replaces the stored value."""
        return replace(self, **{k: v for k, v in overrides.items() if v is not None})

    def save(self, model_dir: Path) -> Path:
        path = Path(model_dir) / CONFIG_FILE
        path.write_text(json.dumps(asdict(self), ensure_ascii=False, indent=2) + "\n", "utf-8")
        return path

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def config_for(name: str, model_dir: Path | None) -> ModelConfig:
    """The stored config of a model directory, else the model's own prompts, else known defaults."""
    if model_dir is not None:
        stored = Path(model_dir) / CONFIG_FILE
        if stored.is_file():
            return ModelConfig.from_dict(json.loads(stored.read_text("utf-8")))
        prompts = _st_prompts(Path(model_dir))
        if prompts.get("query") or prompts.get("document"):
            return ModelConfig(prompts.get("query", ""), prompts.get("document", ""))
    for pattern, query, document in KNOWN_INSTRUCTIONS:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return ModelConfig(query_instruction=query, document_instruction=document)
    return ModelConfig()


def _st_prompts(model_dir: Path) -> dict[str, str]:
    path = model_dir / "config_sentence_transformers.json"
    if not path.is_file():
        return {}
    prompts = json.loads(path.read_text("utf-8")).get("prompts") or {}
    return {
        "query": prompts.get("query", ""),
        "document": prompts.get("document", prompts.get("passage", prompts.get("corpus", ""))),
    }

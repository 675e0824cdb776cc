"""Question-generation prompts per language, and reading the questions out of an answer.

The templates use llama-index's placeholders, ``{context_str}`` and
``{num_questions_per_chunk}``, so a llama-index ``qa_generate_prompt_tmpl`` works as it is.
"""

from __future__ import annotations

import re

from core.synthesis.filters import cjk_share

ENGLISH = """Context information is below.

---------------------
{context_str}
---------------------

Given the context information and not prior knowledge, write {num_questions_per_chunk} \
question(s) that a user might type into a search engine and that this context answers. \
The questions should be diverse, specific to the context and answerable from it alone. \
Write one question per line, with no numbering and nothing else."""

CHINESE = """以下是上下文信息。

---------------------
{context_str}
---------------------

请仅根据上述上下文信息（不要使用已有知识），\
写出 {num_questions_per_chunk} 个用户可能在搜索引擎中输入、\
并且能由这段上下文回答的问题。问题应当多样、具体，且仅凭这段上下文即可回答。\
每行写一个问题，不要编号，也不要写其他内容。"""

TEMPLATES = {"en": ENGLISH, "zh": CHINESE}
_NUMBERING = re.compile(
    r"^\s*(?:[-*•]|\(?\d+[).:、]|(?:Q|Question|问题)\s*\d*[:：.])\s*", re.IGNORECASE
)


def language_of(texts: list[str]) -> str:
    """``zh`` when most letters of a sample of the corpus are CJK, else ``en``."""
    sample = " ".join(texts[:200])
    return "zh" if cjk_share(sample) > 0.3 else "en"


def render(template: str, context: str, count: int) -> str:
    """The template with its two placeholders filled (other braces are left as they are)."""
    return template.replace("{context_str}", context).replace(
        "{num_questions_per_chunk}", str(count)
    )


def parse_questions(answer: str, count: int) -> list[str]:
    """Up to ``count`` questions from an answer: one per non-empty line, numbering removed."""
    lines = (_NUMBERING.sub("", line).strip().strip('"').strip() for line in answer.splitlines())
    return [line for line in lines if line][:count]

"""Token tensors made off a model's encode thread, then padded together into forward passes.

A request's texts go through the model's own input module (``SentenceTransformer.preprocess``:
its tokenizer, instruction, truncation) on a tokenizer thread; each text keeps its unpadded
rows. The encode thread only pads the rows of a forward pass to its longest text, so what it
computes is what ``SentenceTransformer.encode`` computes for the same texts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from sentence_transformers import SentenceTransformer

Rows = dict[str, "torch.Tensor"]  # one text: a 1-D tensor per model input (input_ids, ...)


@dataclass(frozen=True)
class Tokens:
    """The texts of one request as the model's input module prepared them."""

    rows: list[Rows]
    lengths: list[int]  # tokens of each text after truncation
    shared: dict[str, Any]  # the same for every text of one side: modality, prompt_length


def tokenize(st: SentenceTransformer, texts: list[str], prompt: str, side: str) -> Tokens:
    """``texts`` through ``st.preprocess`` with ``prompt`` and the side as task, split per text."""
    features = st.preprocess(texts, prompt=prompt, task=side)
    mask = features["attention_mask"]
    lengths = mask.sum(1).tolist()
    per_token = {k: v for k, v in features.items() if getattr(v, "shape", None) == mask.shape}
    shared = {k: v for k, v in features.items() if k not in per_token}
    left = _padding_side(st) == "left"
    rows = [
        {k: v[i, -n:] if left else v[i, :n] for k, v in per_token.items()}
        for i, n in enumerate(lengths)
    ]
    return Tokens(rows, lengths, shared)


def collate(st: SentenceTransformer, rows: list[Rows], shared: dict[str, Any]) -> dict[str, Any]:
    """Features of one forward pass: ``rows`` padded as the model's tokenizer pads."""
    from torch.nn.utils.rnn import pad_sequence

    pad_id = getattr(st.tokenizer, "pad_token_id", None) or 0
    side = _padding_side(st)
    features = dict(shared)
    for key in rows[0]:
        value = pad_id if key == "input_ids" else 0
        column = [r[key] for r in rows]
        features[key] = pad_sequence(
            column, batch_first=True, padding_value=value, padding_side=side
        )
    return features


def unsupported(st: SentenceTransformer, prompts: dict[str, str]) -> str | None:
    """Why texts of this model cannot be tokenized apart from its forward pass, if not. Also
    configures its tokenizer for both sides, so that tokenizer threads only read it."""
    for side, prompt in prompts.items():
        features = st.preprocess(["a probe", "a longer probe text"], prompt=prompt, task=side)
        mask = features.get("attention_mask")
        if mask is None or mask.ndim != 2:
            return "its input module makes no attention mask"
        odd = [k for k, v in features.items() if hasattr(v, "shape") and v.shape != mask.shape]
        if odd:
            return f"its input module makes {', '.join(odd)}"
    return None


def settings_vary(st: SentenceTransformer, prompts: dict[str, str]) -> bool:
    """Whether tokenizing one side reconfigures the tokenizer for the other (per-side maximum
    lengths): then concurrent callers would clash, and tokenization must take turns."""
    backend = getattr(st.tokenizer, "backend_tokenizer", None)
    seen = set()
    for side, prompt in prompts.items():
        st.preprocess(["a probe"], prompt=prompt, task=side)
        seen.add(repr((backend.truncation, backend.padding)) if backend else "")
    return len(seen) > 1


def _padding_side(st: SentenceTransformer) -> str:
    return getattr(st.tokenizer, "padding_side", "right")

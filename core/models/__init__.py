"""Model references, per-model retrieval settings, safe loading and encoding."""

from core.models.config import ModelConfig
from core.models.resolve import ResolvedModel, resolve_model

__all__ = ["ModelConfig", "ResolvedModel", "resolve_model"]

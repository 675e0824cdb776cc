"""Serving: batched encoding with loaded-model LRU, and index search; no web framework."""

from core.serving.batcher import Encoded
from core.serving.engine import Engine
from core.serving.search import Hit, ServedIndex
from core.serving.spec import ModelKey, ServeSpec

__all__ = ["Encoded", "Engine", "Hit", "ModelKey", "ServeSpec", "ServedIndex"]

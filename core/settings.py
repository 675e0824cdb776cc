"""Process settings, read from the environment by entry points only (never at import time)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset(
    {
        "postgres",
        "password",
        "changeme",
        "change-me",
        "secret",
        "example",
        "admin",
        "redis",
        "test",
        "default",
    }
)


class Settings(BaseSettings):
    """Where EmbedTune keeps its state and files, and what model loading may do.

    Every field reads ``EMBEDTUNE_<NAME>``; the database and broker URLs also read the
    conventional ``DATABASE_URL`` and ``CELERY_BROKER_URL``. Left unset, both live under
    ``data_dir`` (SQLite and kombu's filesystem transport): one machine, no services.
    """

    model_config = SettingsConfigDict(
        env_prefix="EMBEDTUNE_", env_file=".env", extra="ignore", populate_by_name=True
    )

    environment: Literal["development", "production"] = "development"
    data_dir: Path = Path("var")
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("EMBEDTUNE_DATABASE_URL", "DATABASE_URL")
    )
    broker_url: str | None = Field(
        None, validation_alias=AliasChoices("EMBEDTUNE_BROKER_URL", "CELERY_BROKER_URL")
    )
    broker_prefix: str = ""  # Redis key prefix, to share one Redis between deployments
    host: str = "127.0.0.1"
    port: int = 8000
    trust_remote_code: bool = False  # only an operator may enable remote model code
    device: str | None = None  # "cpu", "cuda", ...; None picks CUDA when present
    max_upload_bytes: int = 2 << 30  # dataset uploads
    max_request_bytes: int = 16 << 20  # every other request body
    rate_limit_per_minute: float = 6000.0  # per API key, on average (embedding clients are busy)
    rate_limit_burst: int = 600
    auth_cache_seconds: float = 10.0  # an accepted key is trusted this long without a DB read
    auth_failures_per_minute: float = 60.0  # missing/wrong keys per client address, then 429
    auth_failures_burst: int = 20
    job_max_attempts: int = 3  # deliveries of one job before it fails as worker_lost
    # Serving (/v1/embeddings, index search): see core.serving.ServeSpec.
    serve_max_batch_size: int = 32  # texts in one forward pass
    serve_max_batch_tokens: int = 8192  # tokens taken from the queue in one worker step
    serve_batch_wait_ms: float = 2.0  # an idle worker waits this long for a step to fill
    serve_max_inputs: int = 2048  # texts in one request
    serve_max_input_chars: int = 32768  # characters per text; longer: 413, or cut with truncate
    serve_max_queue: int = 16384  # texts waiting for one model before 429
    serve_model_memory_mb: int = 4096  # loaded models; least recently used unloaded beyond
    serve_index_memory_mb: int = 4096  # loaded indexes and their document texts
    late_index_memory_mb: int = 2048  # one ColBERT token index (index jobs refuse a larger one)
    serve_onnx: bool = True  # CPU models' transformers run in ONNX Runtime (core/serving/onnx.py)
    serve_truncate: bool = True  # over-long inputs of requests without "truncate": cut, or 413
    serve_truncate_models: dict[str, bool] = {}  # per model reference, e.g. {"mdl_...": false}
    serve_token_ids: Literal["openai", "model", "refuse"] = "openai"  # core/serving/token_ids.py
    # Precision (docs/encoding.md): models served with int8 transformers, each only once a
    # quantize job measured its loss within the limits below.
    serve_int8_models: list[str] = []
    # per model reference: fp16 or bf16 on a CUDA GPU (fp32 with a warning where it cannot)
    serve_half_models: dict[str, Literal["fp16", "bf16"]] = {}
    int8_max_ndcg_drop: float = Field(1.0, ge=0, le=100)  # nDCG@10 points int8 may lose
    int8_min_mean_cosine: float = Field(0.98, ge=0, le=1)  # to the fp32 vectors
    job_onnx: bool = True  # jobs encode with ONNX Runtime on the CPU where measured faster
    heartbeat_seconds: float = 5.0  # a running job's worker refreshes its lease this often
    lease_seconds: float = 60.0  # a running job whose heartbeat is older is taken back
    reconcile_seconds: float = 30.0  # how often the reconciler re-enqueues lost and stale jobs
    # Idempotency-Key records: a reservation whose request never answered (its API process
    # died) may be taken over after this long; answered ones are forgotten after the TTL.
    idempotency_pending_seconds: float = 600.0
    idempotency_ttl_seconds: float = 86400.0
    upload_stale_seconds: float = 3600.0  # a staged upload untouched this long is removed
    # GET /metrics (docs/observability.md): "loopback" open to 127.0.0.1/::1 and a key from
    # elsewhere; "key": always a key; "open": anyone. A worker serves its own on this port.
    metrics_access: Literal["loopback", "key", "open"] = "loopback"
    worker_metrics_port: int | None = None
    cache_dtype: Literal["float32", "float16"] = "float32"  # new embedding-cache shards
    # Promotion of a model to an alias (core/services/aliases.py): the gate's validation
    # metric, the gain it needs over the current model, the largest forgetting drop it admits.
    promotion_metric: Literal["ndcg@10", "recall@10", "mrr@10", "map@10", "recall@100"] = "ndcg@10"
    promotion_min_gain: float = Field(0.0, ge=0, le=1)
    promotion_max_forgetting_drop: float = Field(0.02, ge=0, le=1)
    alias_cache_seconds: float = 1.0  # an API process sees another one's alias move this late
    # Query synthesis with an LLM (core/synthesis/llm.py): an OpenAI-compatible
    # chat-completions endpoint chosen by the operator; the key never leaves the process.
    llm_base_url: str | None = None  # e.g. http://127.0.0.1:11434/v1 (Ollama), vLLM, OpenAI
    llm_model: str | None = None
    llm_api_key: SecretStr = SecretStr("none")  # local servers accept any key
    llm_timeout_seconds: float = 60.0
    llm_max_retries: int = 4  # with exponential backoff on 429/5xx and lost connections
    llm_concurrency: int = 4  # requests in flight per job
    # Remote embeddings as a model for eval/compare ("remote:<model>", core/models/remote.py)
    embeddings_api_base_url: str | None = None
    embeddings_api_key: SecretStr = SecretStr("none")
    embeddings_api_batch_size: int = 64
    embeddings_api_max_retries: int = 4
    embeddings_api_timeout_seconds: float = 60.0

    @model_validator(mode="after")
    def _no_placeholder_secrets(self) -> Settings:
        """In production the database and broker need real URLs with real passwords."""
        if self.environment != "production":
            return self
        for name, url in (
            ("DATABASE_URL", self.database_url),
            ("CELERY_BROKER_URL", self.broker_url),
        ):
            if not url or url.startswith(("sqlite", "filesystem")):
                raise ValueError(f"{name} must name a server in production")
            password = urlsplit(url).password
            if not password or password.lower() in PLACEHOLDER_SECRETS:
                raise ValueError(f"{name} has no password or a placeholder one")
        return self

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'embedtune.db').resolve()}"

    @property
    def celery_broker_url(self) -> str:
        return self.broker_url or "filesystem://"

    @property
    def broker_dir(self) -> Path:
        return self.data_dir / "broker"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache" / "embeddings"

    @property
    def onnx_dir(self) -> Path:
        return self.data_dir / "cache" / "onnx"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def datasets_dir(self) -> Path:
        return self.data_dir / "datasets"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    @property
    def reports_dir(self) -> Path:
        return self.data_dir / "reports"


@lru_cache
def get_settings() -> Settings:
    return Settings()

"""Service settings, read once from environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything the service and ``python -m service.publish`` can be told.

    Variable names are the field names in upper case (``REDIS_URL``, ``ARTIFACT_DIR``, ...).
    """

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    redis_url: str | None = Field(
        default=None, description="redis://host:port/db; unset → in-process store (quick start)")
    redis_timeout_s: float = Field(default=0.5, gt=0, description="connect/read timeout")
    key_prefix: str = Field(default="mvcrec", min_length=1, description="Redis key prefix")
    artifact_dir: Path = Path("artifacts")
    model_name: str = Field(default="demo", min_length=1)
    device: str = Field(default="auto", description="auto (cuda when available), cpu, cuda:N")
    faiss_gpu: Literal["auto", "off"] = Field(
        default="auto", description="auto: GPU index when faiss has GPU support and DEVICE is cuda")
    cpu_threads: int = Field(default=0, ge=0, description="torch/faiss CPU threads; 0: default")
    auto_publish: bool = Field(
        default=True, description="publish the newest local version when the store names none, "
                                  "or re-publish the served one when Redis lost it")
    poll_interval_s: float = Field(default=2.0, gt=0, description="active-pointer poll interval")
    swap_retry_s: float = Field(default=30.0, ge=0, description="wait before retrying a version")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 response")
    store_cooldown_s: float = Field(
        default=1.0, ge=0, description="after a Redis failure, fail fast for this long")
    local_copy_max_bytes: int = Field(
        default=256 * 2**20, ge=0,
        description="keep the active version's graph rows in process, read there instead of "
                    "Redis, when they take at most this; 0: never (503 while Redis fails)")
    admin_token: SecretStr | None = Field(
        default=None, description="bearer token of /admin; unset: the admin API is disabled")

    index_type: Literal["exact", "ivf"] = Field(
        default="exact", description="exact: flat inner-product search; ivf: approximate "
                                     "(inverted lists) for large catalogs")
    ivf_nlist: int = Field(default=0, ge=0, description="IVF lists; 0: about 2·sqrt(N)")
    ivf_nprobe: int = Field(default=48, ge=1, description="IVF lists searched per query")
    blas_min_queries: int = Field(
        default=0, ge=0, description="exact CPU searches of at least this many queries use BLAS; "
                                     "0: measured when a version is loaded")
    batching: bool = Field(default=True,
                           description="micro-batch concurrent POST /recommend requests")
    batch_max_size: int = Field(default=32, ge=1, description="most requests in one batch")
    batch_max_wait_s: float = Field(
        default=0.001, ge=0,
        description="how long a batch waits for more requests, while waits gather requests")
    similar_cache_size: int = Field(
        default=10_000, ge=0, description="GET /items/{id}/similar answers remembered per "
                                          "served version (LRU); 0: no cache")
    bench_endpoint: bool = Field(
        default=False, description="serve POST /bench/trivial (load-test ceiling, no model)")

    max_session_length: int = Field(default=1000, ge=1)
    max_exclude: int = Field(default=1000, ge=0)
    max_k: int = Field(default=100, ge=1)
    max_batch_requests: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_concurrent_per_client: int = Field(default=32, ge=0, description="0: no limit")
    rate_limit_per_s: float = Field(default=0.0, ge=0, description="per client; 0: no limit")
    rate_limit_burst: int = Field(default=100, ge=1, description="token bucket size")

    session_max_events: int = Field(default=200, ge=1, description="newest events kept")
    session_ttl_s: int = Field(default=24 * 3600, ge=1, description="after the last append")
    max_events_per_append: int = Field(default=100, ge=1)

    opentelemetry: bool = Field(
        default=False, description="FastAPI's own OpenTelemetry spans and metrics per request "
                                   "(with a configured provider); off: /metrics is Prometheus")

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"

    @field_validator("admin_token", mode="before")
    @classmethod
    def _check_admin_token(cls, value: object) -> object:
        if value in (None, ""):
            return None  # ADMIN_TOKEN= (empty) disables the admin API like an unset one
        secret = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
        if len(secret) < 16:
            raise ValueError("ADMIN_TOKEN must have at least 16 characters")
        return value

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if value != "auto" and not value.startswith(("cpu", "cuda", "mps")):
            raise ValueError(f"DEVICE must be auto, cpu or cuda[:n], got {value!r}")
        return value


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; tests call ``get_settings.cache_clear()`` after changing env."""
    return Settings()

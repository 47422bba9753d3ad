"""Service settings, read once from environment variables (or a ``.env`` file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
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
        default=True, description="publish the newest local version when the store names none")
    poll_interval_s: float = Field(default=2.0, gt=0, description="active-pointer poll interval")
    swap_retry_s: float = Field(default=30.0, ge=0, description="wait before retrying a version")
    retry_after_s: int = Field(default=5, ge=1, description="Retry-After of a 503 response")

    max_session_length: int = Field(default=1000, ge=1)
    max_exclude: int = Field(default=1000, ge=0)
    max_k: int = Field(default=100, ge=1)
    max_batch_requests: int = Field(default=64, ge=1)
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    log_level: str = "info"

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

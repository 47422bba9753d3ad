"""Deploy fixtures: the real app under uvicorn on a free port (in-process store, CPU) serving a
freshly exported tiny MVCrec model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from service.config import Settings
from service.main import create_app
from training.export import export_run
from training.pipeline import PreparedData

ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "demo"


@pytest.fixture(scope="session")
def demo_artifacts(tmp_path_factory: pytest.TempPathFactory, trained_run: Path,
                   prepared: PreparedData) -> Path:
    """An artifact root holding one exported version of the tiny trained run."""
    root = tmp_path_factory.mktemp("deploy-artifacts")
    export_run(trained_run, root, MODEL_NAME, data=prepared)
    return root


@pytest.fixture(scope="session")
def demo_settings(demo_artifacts: Path) -> Settings:
    return Settings(_env_file=None, redis_url=None, artifact_dir=demo_artifacts,
                    model_name=MODEL_NAME, device="cpu", cpu_threads=1)


@pytest.fixture(scope="session")
def live_server(demo_settings: Settings) -> Iterator[str]:
    """Base URL of the app served by uvicorn in a thread; yields once ``/readyz`` is 200."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(create_app(demo_settings), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        _wait_ready(base, thread)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def _wait_ready(base: str, thread: threading.Thread, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("uvicorn exited during startup")
        try:
            last = httpx.get(f"{base}/readyz", timeout=2)
            if last.status_code == 200:
                return
        except httpx.TransportError as error:
            last = error
        time.sleep(0.1)
    raise RuntimeError(f"the app was not ready after {timeout_s} s: {last}")

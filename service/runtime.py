"""The long-lived part of the service: the store client, the served state, and the watcher that
swaps in a newly activated version.

The swap builds the new :class:`ServingState` completely (artifact verified, encoder on the
device, index built) and then replaces one reference; requests read that reference once.

When the store names no active version while this replica serves one (Redis restarted empty), the
replica re-publishes its served version from its verified artifact and re-activates it unless
another replica was faster (``AUTO_PUBLISH``); until then requests use the in-process copy.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread
import torch

from model.artifact import ArtifactError, latest_version, load_artifact
from service import metrics
from service.config import Settings
from service.publish import PublishError, publish_version
from service.state import IndexSpec, ServingState, build_state
from service.store import EmbeddingStore, StoreUnavailable, VersionStateError

log = logging.getLogger(__name__)


# what a failure is called where clients can read it (no hosts, paths or exception text)
_PUBLIC_REASONS: dict[type[Exception], str] = {
    StoreUnavailable: "Redis is unavailable",
    ArtifactError: "the model artifact is missing or invalid",
    VersionStateError: "the version is not completely published",
    PublishError: "publishing the version failed verification",
}


@dataclass(frozen=True)
class _Failure:
    version: str | None
    reason: str
    public: str
    at: float


class Runtime:
    """Holds the served :class:`ServingState` (``None`` until one is loaded)."""

    def __init__(self, settings: Settings, store: EmbeddingStore, device: torch.device) -> None:
        self.settings = settings
        self.store = store
        self.device = device
        self.state: ServingState | None = None
        self._failure: _Failure | None = None
        self._lock = threading.Lock()

    @property
    def last_error(self) -> str | None:
        """Why the last refresh failed, in full (for logs and the admin API)."""
        return None if self._failure is None else self._failure.reason

    @property
    def public_error(self) -> str | None:
        """The same, as a short phrase that is safe to show to any client."""
        return None if self._failure is None else self._failure.public

    def refresh(self) -> bool:
        """Serve the version the store's pointer names if it is not served yet; return whether
        the state changed. With nothing active and ``auto_publish``, the served version (or,
        before one is served, the newest local one) is published first. Failures are logged and
        leave the served state as it is."""
        with self._lock:
            return self._refresh()

    def reload(self) -> bool:
        """:meth:`refresh` at once, retrying even a version that failed recently."""
        with self._lock:
            self._failure = None
            return self._refresh()

    def _refresh(self) -> bool:
        name = self.settings.model_name
        version: str | None = None
        try:
            version = self.store.active(name)
            if version is None and self.settings.auto_publish:
                version = None if self.state is None else self.state.version
                if version is not None and self._recently_failed(version):
                    return False
                version = self._publish_local(version)
            if version is None:
                return False
            if self.state is not None and self.state.version == version:
                self._failure = None  # the store answers and names what is served
                return False
            if self._recently_failed(version):
                return False
            state = self._build(version)
        except (StoreUnavailable, ArtifactError, VersionStateError, PublishError) as error:
            self._fail(version, error)
            return False
        previous, self.state = self.state, state
        # Everything loaded so far (libraries, app, this version) lives as long as the process:
        # move it out of the cyclic collector's reach. Otherwise each full collection walks
        # ~375k objects: at 32 users on one core, 18 of them in 35 s took 3.3 s of CPU and made
        # the p99 188 ms (29 ms frozen; docs/serving.md, Performance).
        gc.freeze()
        self._failure = None
        metrics.set_model_version(name, state.version)
        log.info("serving %s version %s (was %s, %s, BLAS search from %s queries)", name,
                 state.version, None if previous is None else previous.version, state.index_kind,
                 state.blas_min_queries or "-")
        return True

    def _publish_local(self, version: str | None) -> str | None:
        """Publish ``version`` (the newest local one when ``None``) from the artifact directory
        and activate it unless another became active meanwhile; return the active version."""
        name = self.settings.model_name
        path: Path = (latest_version(self.settings.artifact_dir, name) if version is None
                      else self.settings.artifact_dir / name / version)
        artifact = load_artifact(path)
        publish_version(self.store, artifact, name, activate=False)
        self.store.activate(name, artifact.version, only_if_unset=True)
        if version is not None:
            metrics.REPUBLISHES.inc()
            log.warning("the store had lost the active version; re-published %s version %s",
                        name, version)
        return self.store.active(name)

    def _build(self, version: str) -> ServingState:
        name = self.settings.model_name
        meta = self.store.meta(name, version)
        if meta.get("complete") != "1":
            raise VersionStateError(f"active version {version} is not completely published")
        path = self.settings.artifact_dir / name / version
        try:
            artifact = load_artifact(path, device=self.device)
        except ArtifactError as error:
            raise ArtifactError(f"active version {version}: {error}") from None
        spec = IndexSpec(self.settings.index_type, self.settings.ivf_nlist,
                         self.settings.ivf_nprobe, self.settings.blas_min_queries)
        state = build_state(artifact, name, self.device, self.settings.faiss_gpu,
                            self.settings.local_copy_max_bytes, spec,
                            search_threads=self.settings.cpu_threads)
        if meta.get("dim") != str(state.dim) or meta.get("num_items") != str(state.num_items):
            raise VersionStateError(
                f"store holds dim={meta.get('dim')} num_items={meta.get('num_items')} for "
                f"version {version}, the artifact has dim={state.dim} num_items="
                f"{state.num_items}")
        return state

    def _recently_failed(self, version: str) -> bool:
        failure = self._failure
        return (failure is not None and failure.version == version
                and time.monotonic() - failure.at < self.settings.swap_retry_s)

    def _fail(self, version: str | None, error: Exception) -> None:
        reason = str(error)
        if self._failure is None or self._failure.reason != reason:
            log.error("cannot serve a new version: %s", reason)
        metrics.REFRESH_FAILURES.inc()
        public = next(text for kind, text in _PUBLIC_REASONS.items() if isinstance(error, kind))
        self._failure = _Failure(version, reason, public, time.monotonic())

    async def watch(self) -> None:
        """Poll the active pointer every ``poll_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            await anyio.to_thread.run_sync(self.refresh)

"""The long-lived part of the service: the store client, the served state, and the watcher that
swaps in a newly activated version.

The swap builds the new :class:`ServingState` completely (artifact verified, encoder on the
device, index built) and then replaces one reference; requests read that reference once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import anyio.to_thread
import torch

from model.artifact import ArtifactError, latest_version, load_artifact
from service import metrics
from service.config import Settings
from service.publish import PublishError, publish_version
from service.state import ServingState, build_state
from service.store import EmbeddingStore, StoreUnavailable, VersionStateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Failure:
    version: str | None
    reason: str
    at: float


class Runtime:
    """Holds the served :class:`ServingState` (``None`` until one is loaded)."""

    def __init__(self, settings: Settings, store: EmbeddingStore, device: torch.device) -> None:
        self.settings = settings
        self.store = store
        self.device = device
        self.state: ServingState | None = None
        self._failure: _Failure | None = None

    @property
    def last_error(self) -> str | None:
        return None if self._failure is None else self._failure.reason

    def refresh(self) -> bool:
        """Serve the version the store's pointer names if it is not served yet; return whether
        the state changed. With nothing active and ``auto_publish``, the newest local version is
        published first. Failures are logged and leave the served state as it is."""
        name = self.settings.model_name
        version: str | None = None
        try:
            version = self.store.active(name)
            if version is None and self.state is None and self.settings.auto_publish:
                version = self._publish_newest()
            if version is None or (self.state is not None and self.state.version == version):
                return False
            if self._recently_failed(version):
                return False
            state = self._build(version)
        except (StoreUnavailable, ArtifactError, VersionStateError, PublishError) as error:
            self._fail(version, str(error))
            return False
        previous, self.state = self.state, state
        self._failure = None
        metrics.set_model_version(name, state.version)
        log.info("serving %s version %s (was %s, %s)", name, state.version,
                 None if previous is None else previous.version, state.index_kind)
        return True

    def _publish_newest(self) -> str | None:
        """Publish the newest local version and activate it unless another became active."""
        name = self.settings.model_name
        artifact = load_artifact(latest_version(self.settings.artifact_dir, name))
        publish_version(self.store, artifact, name, activate=False)
        self.store.activate(name, artifact.version, only_if_unset=True)
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
        state = build_state(artifact, name, self.device, self.settings.faiss_gpu)
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

    def _fail(self, version: str | None, reason: str) -> None:
        if self._failure is None or self._failure.reason != reason:
            log.error("cannot serve a new version: %s", reason)
        metrics.REFRESH_FAILURES.inc()
        self._failure = _Failure(version, reason, time.monotonic())

    async def watch(self) -> None:
        """Poll the active pointer every ``poll_interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            await anyio.to_thread.run_sync(self.refresh)

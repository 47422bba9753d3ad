"""``/admin``: publish, activate, roll back, delete and reload model versions over HTTP, with the
same code as ``python -m service.publish``.

Every call needs ``Authorization: Bearer <ADMIN_TOKEN>`` (compared in constant time); without a
configured ``ADMIN_TOKEN`` the whole API answers 403, so it is never open by default.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from model.artifact import ArtifactError, load_artifact
from service.api.deps import RuntimeDep, SettingsDep
from service.api.errors import error_responses
from service.publish import PublishError, publish_version, rollback
from service.runtime import Runtime
from service.store import VersionStateError

_bearer = HTTPBearer(auto_error=False, description="ADMIN_TOKEN")


async def require_admin(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """403 while no ADMIN_TOKEN is configured, 401 unless the bearer token matches it."""
    if settings.admin_token is None:
        raise HTTPException(403, "admin API disabled: set ADMIN_TOKEN to enable it")
    expected = settings.admin_token.get_secret_value().encode()
    given = b"" if credentials is None else credentials.credentials.encode()
    if not hmac.compare_digest(given, expected):
        raise HTTPException(401, "missing or wrong admin token",
                            headers={"WWW-Authenticate": "Bearer"})


router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)],
                   responses=error_responses(401, 403, 429, 503))

Version = Annotated[str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
                              description="A version directory name under ARTIFACT_DIR/MODEL_NAME")]


class VersionInfo(BaseModel):
    version: str
    complete: bool
    num_items: int | None
    dim: int | None
    published_at: str | None


class Versions(BaseModel):
    active: str | None
    previous: str | None = Field(description="The rollback target")
    served: str | None = Field(description="The version this replica serves")
    last_error: str | None = Field(description="Why this replica's last refresh failed")
    versions: list[VersionInfo]


class Switched(BaseModel):
    active: str
    previous: str | None
    served: str | None = Field(description="The version this replica serves after the call")


class Published(BaseModel):
    version: str
    written: bool = Field(description="False: an identical complete copy was already there")
    active: str | None
    served: str | None


class Reloaded(BaseModel):
    served: str | None
    last_error: str | None


@router.get("/versions", response_model=Versions)
def list_versions(runtime: RuntimeDep, settings: SettingsDep) -> Versions:
    """Versions in the store, the active and previous ones, and this replica's state."""
    store, name = runtime.store, settings.model_name
    infos = []
    for version in store.versions(name):
        meta = store.meta(name, version)
        infos.append(VersionInfo(
            version=version, complete=meta.get("complete") == "1",
            num_items=int(meta["num_items"]) if "num_items" in meta else None,
            dim=int(meta["dim"]) if "dim" in meta else None,
            published_at=meta.get("published_at")))
    return Versions(active=store.active(name), previous=store.previous(name),
                    served=_served(runtime), last_error=runtime.last_error, versions=infos)


@router.put("/versions/{version}", response_model=Published,
            responses=error_responses(404, 409))
def publish(version: Version, runtime: RuntimeDep, settings: SettingsDep,
            activate: Annotated[bool, Query(description="Activate it once published")] = False,
            ) -> Published:
    """Publish ``ARTIFACT_DIR/MODEL_NAME/{version}`` into the store: the artifact is verified
    first (a corrupt or incomplete one is refused with 409 and nothing is written), every row
    is read back and compared (503 on a difference), and only then is the version marked
    complete (and activated)."""
    name = settings.model_name
    path = settings.artifact_dir / name / version
    if not path.is_dir():
        raise HTTPException(404, f"no artifact directory for version {version}")
    try:
        artifact = load_artifact(path)
    except ArtifactError as error:
        raise HTTPException(409, f"artifact refused: {error}") from None
    try:
        written = publish_version(runtime.store, artifact, name, activate=activate)
    except PublishError as error:
        raise HTTPException(503, str(error),
                            headers={"Retry-After": str(settings.retry_after_s)}) from None
    if activate:
        runtime.refresh()
    return Published(version=version, written=written, active=runtime.store.active(name),
                     served=_served(runtime))


@router.post("/versions/{version}/activate", response_model=Switched,
             responses=error_responses(409))
def activate(version: Version, runtime: RuntimeDep, settings: SettingsDep) -> Switched:
    """Point every replica at a completely published version (409 otherwise); this replica
    switches before answering, the others within POLL_INTERVAL_S."""
    try:
        previous = runtime.store.activate(settings.model_name, version)
    except VersionStateError as error:
        raise HTTPException(409, str(error)) from None
    runtime.refresh()
    return Switched(active=version, previous=previous, served=_served(runtime))


@router.post("/rollback", response_model=Switched, responses=error_responses(409))
def roll_back(runtime: RuntimeDep, settings: SettingsDep) -> Switched:
    """Activate the version that was active before the current one."""
    try:
        active, previous = rollback(runtime.store, settings.model_name)
    except VersionStateError as error:
        raise HTTPException(409, str(error)) from None
    runtime.refresh()
    return Switched(active=active, previous=previous, served=_served(runtime))


@router.delete("/versions/{version}", status_code=204, responses=error_responses(409))
def delete(version: Version, runtime: RuntimeDep, settings: SettingsDep) -> None:
    """Remove an inactive version from the store (409 for the active one)."""
    try:
        runtime.store.delete(settings.model_name, version)
    except VersionStateError as error:
        raise HTTPException(409, str(error)) from None


@router.post("/reload", response_model=Reloaded)
def reload(runtime: RuntimeDep) -> Reloaded:
    """Re-read the active pointer now and load its version, even one that failed recently."""
    runtime.reload()
    return Reloaded(served=_served(runtime), last_error=runtime.last_error)


def _served(runtime: Runtime) -> str | None:
    state = runtime.state
    return None if state is None else state.version

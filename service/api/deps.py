"""Dependencies, as ``Annotated`` aliases. They are ``async`` because they only read references,
so FastAPI runs them on the event loop instead of a worker thread."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.batching import Recommender, SimilarFinder
from service.config import Settings
from service.runtime import Runtime
from service.sessions import SessionStore
from service.state import ServingState
from service.store import EmbeddingStore


class ModelNotLoaded(RuntimeError):
    """No model version is loaded yet (the store was unreachable or the artifact is missing)."""


async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


SettingsDep = Annotated[Settings, Depends(get_app_settings)]


def served_state(runtime: Runtime) -> ServingState:
    """The served version, or :class:`ModelNotLoaded` (a 503) while there is none."""
    state = runtime.state
    if state is None:
        raise ModelNotLoaded(f"no model version loaded yet ({runtime.public_error or 'starting'})")
    return state


async def get_state(runtime: RuntimeDep) -> ServingState:
    """The served version, read once per request."""
    return served_state(runtime)


StateDep = Annotated[ServingState, Depends(get_state)]


async def get_store(runtime: RuntimeDep) -> EmbeddingStore:
    return runtime.store


StoreDep = Annotated[EmbeddingStore, Depends(get_store)]


async def get_sessions(request: Request) -> SessionStore:
    sessions: SessionStore = request.app.state.sessions
    return sessions


SessionsDep = Annotated[SessionStore, Depends(get_sessions)]


async def get_similar_finder(request: Request) -> SimilarFinder:
    """``GET /items/{id}/similar``'s answerer: micro-batched or direct (``BATCHING``)."""
    finder: SimilarFinder = request.app.state.similar_finder
    return finder


SimilarFinderDep = Annotated[SimilarFinder, Depends(get_similar_finder)]


async def get_recommender(request: Request) -> Recommender:
    """``POST /recommend``'s answerer (micro-batched or direct), shared by the stored sessions'
    ``GET /sessions/{id}/recommendations``."""
    recommender: Recommender = request.app.state.recommender
    return recommender


RecommenderDep = Annotated[Recommender, Depends(get_recommender)]

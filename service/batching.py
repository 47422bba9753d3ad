"""Micro-batching: concurrent requests answered by one call over a list of inputs.

The contract is that of Ray Serve's ``@serve.batch`` and Triton's dynamic batcher: the handler
takes a list of inputs and returns a list of the same length, result ``i`` for input ``i``. One
worker task takes what is queued (at most ``max_batch_size``), waits up to ``max_wait_s`` for more
while the batch is not full, runs the handler, and hands each caller its own result. An exception
of the handler (or a list of the wrong length) is raised to every caller of that batch. While one
batch runs, new requests queue up, so under load batches fill without waiting.

:class:`BatchedAnswerer` puts ``POST /recommend`` and ``GET /items/{id}/similar`` behind it: the
served state is read once per batch (a batch never mixes model versions), and the whole batch is
one encoder pass (at most one store round trip) and one FAISS search, run in a worker thread so
the event loop keeps accepting requests. :class:`DirectAnswerer` is the same interface without
batching (``BATCHING=false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio.to_thread

from service import metrics
from service.recommender import (
    Query,
    Result,
    SimilarItems,
    SimilarQuery,
    StoreError,
    answer_each,
    similar_each,
)
from service.state import ServingState
from service.store import EmbeddingStore

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass
class _Pending(Generic[In, Out]):
    item: In
    future: asyncio.Future[Out]


class MicroBatcher(Generic[In, Out]):
    """Runs ``handler`` over batches of the items passed to :meth:`submit` concurrently.

    Args:
        handler: ``list[In]`` → ``list[Out]`` of the same length, in the same order.
        max_batch_size: most items in one call of ``handler``.
        max_wait_s: how long a batch that is not full waits for more items after the worker took
            its first one (0: take only what is already queued).
    """

    def __init__(self, handler: Callable[[list[In]], Awaitable[list[Out]]], max_batch_size: int,
                 max_wait_s: float) -> None:
        if max_batch_size < 1 or max_wait_s < 0:
            raise ValueError("max_batch_size must be >= 1 and max_wait_s >= 0")
        self.handler = handler
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self._queue: deque[_Pending[In, Out]] = deque()
        self._arrived = asyncio.Event()  # something is queued
        self._full = asyncio.Event()  # a full batch is queued
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the worker task (on the running event loop)."""
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def aclose(self) -> None:
        """Stop the worker; callers still queued get a ``RuntimeError``."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the batcher was stopped"))

    async def submit(self, item: In) -> Out:
        """``handler``'s result for ``item``, computed in a batch with concurrent submissions."""
        if self._worker is None or self._worker.done():
            raise RuntimeError("the batcher is not running (start() it in the lifespan)")
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(item, future))
        self._arrived.set()
        if len(self._queue) >= self.max_batch_size:
            self._full.set()
        return await future

    async def _run(self) -> None:
        while True:
            await self._arrived.wait()
            if len(self._queue) < self.max_batch_size and self.max_wait_s > 0:
                self._full.clear()  # one timer per batch, however many requests arrive
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.max_wait_s)
            batch = [self._queue.popleft()
                     for _ in range(min(self.max_batch_size, len(self._queue)))]
            if not self._queue:
                self._arrived.clear()
            if len(self._queue) < self.max_batch_size:
                self._full.clear()
            live = [pending for pending in batch if not pending.future.done()]  # not cancelled
            if live:
                await self._answer(live)

    async def _answer(self, batch: list[_Pending[In, Out]]) -> None:
        try:
            results = await self.handler([pending.item for pending in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch handler returned {len(results)} results for "
                                   f"{len(batch)} inputs")
        except Exception as error:  # every caller of the batch gets it
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(error)
            return
        except asyncio.CancelledError:
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(RuntimeError("the batcher was stopped"))
            raise
        for pending, result in zip(batch, results, strict=True):
            if not pending.future.done():
                pending.future.set_result(result)


Query_ = TypeVar("Query_")
Answer = TypeVar("Answer")
#: ``(state, queries)`` → one answer per query, in order; an answer may be an exception, raised
#: to that query's caller only (e.g. a store failure, while the batch's popularity answers stand).
AnswerFn = Callable[[ServingState, Sequence[Query_]], Sequence[Answer]]


QueryIn = TypeVar("QueryIn", contravariant=True)
AnswerOut = TypeVar("AnswerOut", covariant=True)


class Answerer(Protocol[QueryIn, AnswerOut]):
    """Answers one query: the model version used and the answer (exceptions raised)."""

    async def __call__(self, query: QueryIn) -> tuple[str, AnswerOut]: ...


class DirectAnswerer(Generic[Query_, Answer]):
    """One query per call: reads the served state and answers in a worker thread."""

    def __init__(self, read_state: Callable[[], ServingState],
                 answer: AnswerFn[Query_, Answer | Exception]) -> None:
        self.read_state = read_state
        self.answer = answer

    async def __call__(self, query: Query_) -> tuple[str, Answer]:
        state = self.read_state()
        answers = await anyio.to_thread.run_sync(self.answer, state, [query])
        return state.version, _raised(answers[0])


class BatchedAnswerer(Generic[Query_, Answer]):
    """Concurrent queries answered together (see the module docstring)."""

    def __init__(self, read_state: Callable[[], ServingState],
                 answer: AnswerFn[Query_, Answer | Exception], max_batch_size: int,
                 max_wait_s: float, endpoint: str) -> None:
        self.read_state = read_state
        self.answer = answer
        self.endpoint = endpoint
        self.batcher: MicroBatcher[Query_, tuple[str, Answer | Exception]] = MicroBatcher(
            self._answer_batch, max_batch_size, max_wait_s)

    def start(self) -> None:
        self.batcher.start()

    async def aclose(self) -> None:
        await self.batcher.aclose()

    async def __call__(self, query: Query_) -> tuple[str, Answer]:
        version, answer = await self.batcher.submit(query)
        return version, _raised(answer)

    async def _answer_batch(self, queries: Sequence[Query_],
                            ) -> list[tuple[str, Answer | Exception]]:
        state = self.read_state()  # once: every query of the batch is answered by one version
        metrics.BATCH_SIZE.labels(self.endpoint).observe(len(queries))
        answers = await anyio.to_thread.run_sync(self.answer, state, queries)
        return [(state.version, answer) for answer in answers]


def _raised(answer: Answer | Exception) -> Answer:
    if isinstance(answer, Exception):
        raise answer
    return answer


Recommender = Answerer[Query, Result]
SimilarFinder = Answerer[SimilarQuery, SimilarItems | None]


def recommender(read_state: Callable[[], ServingState], store: EmbeddingStore, batching: bool,
                max_batch_size: int, max_wait_s: float,
                ) -> DirectAnswerer[Query, Result] | BatchedAnswerer[Query, Result]:
    """``POST /recommend``'s answerer: micro-batched, or one query per call."""
    answer = functools.partial(_answer_each, store)
    if batching:
        return BatchedAnswerer(read_state, answer, max_batch_size, max_wait_s, "recommend")
    return DirectAnswerer(read_state, answer)


def similar_finder(read_state: Callable[[], ServingState], batching: bool, max_batch_size: int,
                   max_wait_s: float,
                   ) -> (DirectAnswerer[SimilarQuery, SimilarItems | None]
                         | BatchedAnswerer[SimilarQuery, SimilarItems | None]):
    """``GET /items/{id}/similar``'s answerer: micro-batched, or one query per call."""
    if batching:
        return BatchedAnswerer(read_state, similar_each, max_batch_size, max_wait_s, "similar")
    return DirectAnswerer(read_state, similar_each)


def _answer_each(store: EmbeddingStore, state: ServingState, queries: Sequence[Query],
                 ) -> list[Result | StoreError]:
    return answer_each(state, store, queries)

"""Micro-batching: concurrent requests answered by one call over a list of inputs.

The contract is that of Ray Serve's ``@serve.batch`` and Triton's dynamic batcher: the handler
takes a list of inputs and returns a list of the same length, result ``i`` for input ``i``. One
worker task takes what is queued (at most ``max_batch_size``), waits up to ``max_wait_s`` for more
while the batch is not full and recent waits gathered requests, runs the handler, and hands each
caller its own result. An exception of the handler (or a list of the wrong length) is raised to
every caller of that batch. While one batch runs, new requests queue up, so under load batches fill
without waiting; a lone client, whose next request only comes after its answer, stops paying for
waits that gather nothing.

:class:`BatchedAnswerer` puts ``POST /recommend`` and ``GET /items/{id}/similar`` behind one
batcher, so a batch may mix sessions and items (product-page traffic comes in ones and twos, too
few to batch on their own): the served state is read once per batch (a batch never mixes model
versions), and the whole batch is one encoder pass (at most one store round trip) and one FAISS
search, run in a worker thread so the event loop keeps accepting requests.
:class:`DirectAnswerer` is the same interface without batching (``BATCHING=false``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import anyio.to_thread

from service import metrics
from service.recommender import (
    ModelAnswer,
    ModelQuery,
    Query,
    Result,
    SimilarItems,
    SimilarQuery,
    answer_batch,
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
            its first one, while such waits pay (:meth:`_should_wait`; 0: never wait, take only
            what is already queued).
    """

    #: weight of the newest wait in the running mean of the requests a wait gathered
    GATHER_SMOOTHING = 0.1
    #: waits pay while they gather at least this many requests on average
    MIN_GATHERED = 0.25
    #: while waits do not pay, one batch in this many waits anyway, to notice when they do again
    PROBE_EVERY = 16

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
        self.mean_gathered = 1.0  # requests a wait gathered, running mean (starts by waiting)
        self._batches_since_wait = 0

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
            if len(self._queue) < self.max_batch_size and self._should_wait():
                queued = len(self._queue)
                # one timer per batch, however many requests arrive (a plain timer: wait_for
                # would create a task for every batch)
                self._full.clear()
                timer = asyncio.get_running_loop().call_later(self.max_wait_s, self._full.set)
                try:
                    await self._full.wait()
                finally:
                    timer.cancel()
                self.mean_gathered += self.GATHER_SMOOTHING * (len(self._queue) - queued
                                                               - self.mean_gathered)
            batch = [self._queue.popleft()
                     for _ in range(min(self.max_batch_size, len(self._queue)))]
            if not self._queue:
                self._arrived.clear()
            if len(self._queue) < self.max_batch_size:
                self._full.clear()
            live = [pending for pending in batch if not pending.future.done()]  # not cancelled
            if live:
                await self._answer(live)

    def _should_wait(self) -> bool:
        """Whether this batch waits for more: while waits gather ``MIN_GATHERED`` requests on
        average, and otherwise one batch in ``PROBE_EVERY``. Independent arrivals make waits pay
        (half of the peak on Beauty: ~1 request a 1 ms wait); a lone client's never do (its next
        request waits for this answer), and each would add the whole wait to its latency."""
        if self.max_wait_s <= 0:
            return False
        self._batches_since_wait += 1
        if self.mean_gathered >= self.MIN_GATHERED or self._batches_since_wait >= self.PROBE_EVERY:
            self._batches_since_wait = 0
            return True
        return False

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


#: ``(state, queries)`` → one answer per query, in order; an answer may be an exception, raised
#: to that query's caller only (e.g. a store failure, while the batch's other answers stand).
AnswerFn = Callable[[ServingState, Sequence[ModelQuery]], Sequence[ModelAnswer]]

#: An answer as its caller gets it (a store error is raised instead).
Answered = Result | SimilarItems | None

QueryIn = TypeVar("QueryIn", contravariant=True)
AnswerOut = TypeVar("AnswerOut", covariant=True)


class Answerer(Protocol[QueryIn, AnswerOut]):
    """Answers one query: the model version used and the answer (exceptions raised)."""

    async def __call__(self, query: QueryIn) -> tuple[str, AnswerOut]: ...


class DirectAnswerer:
    """One query per call: reads the served state and answers in a worker thread."""

    def __init__(self, read_state: Callable[[], ServingState], answer: AnswerFn) -> None:
        self.read_state = read_state
        self.answer = answer

    async def __call__(self, query: ModelQuery) -> tuple[str, Answered]:
        state = self.read_state()
        answers = await anyio.to_thread.run_sync(self.answer, state, [query])
        return state.version, _raised(answers[0])


class BatchedAnswerer:
    """Concurrent queries of both endpoints answered together (see the module docstring).

    Batches run one at a time, so they run in one thread of their own: handing a batch to it
    costs less than a hop into anyio's shared pool (capacity limiter, context lookups), and the
    model's thread-local settings (OpenMP threads) stay on one thread."""

    def __init__(self, read_state: Callable[[], ServingState], answer: AnswerFn,
                 max_batch_size: int, max_wait_s: float) -> None:
        self.read_state = read_state
        self.answer = answer
        self.batcher: MicroBatcher[ModelQuery, tuple[str, ModelAnswer]] = MicroBatcher(
            self._answer_batch, max_batch_size, max_wait_s)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="batch")

    def start(self) -> None:
        self.batcher.start()

    async def aclose(self) -> None:
        await self.batcher.aclose()
        self._thread.shutdown(wait=False)

    async def __call__(self, query: ModelQuery) -> tuple[str, Answered]:
        version, answer = await self.batcher.submit(query)
        return version, _raised(answer)

    async def _answer_batch(self, queries: Sequence[ModelQuery],
                            ) -> list[tuple[str, ModelAnswer]]:
        state = self.read_state()  # once: every query of the batch is answered by one version
        sessions = sum(isinstance(query, Query) for query in queries)
        for endpoint, count in (("recommend", sessions), ("similar", len(queries) - sessions)):
            if count:
                metrics.BATCH_SIZE.labels(endpoint).observe(count)
        answers = await asyncio.get_running_loop().run_in_executor(
            self._thread, self.answer, state, queries)
        return [(state.version, answer) for answer in answers]


def _raised(answer: ModelAnswer) -> Answered:
    if isinstance(answer, Exception):
        raise answer
    return answer


class _SessionAnswerer:
    """``POST /recommend``'s view of the shared answerer."""

    def __init__(self, answerer: DirectAnswerer | BatchedAnswerer) -> None:
        self.answerer = answerer

    async def __call__(self, query: Query) -> tuple[str, Result]:
        version, answer = await self.answerer(query)
        assert isinstance(answer, Result)
        return version, answer


class _ItemAnswerer:
    """``GET /items/{id}/similar``'s view of the shared answerer."""

    def __init__(self, answerer: DirectAnswerer | BatchedAnswerer) -> None:
        self.answerer = answerer

    async def __call__(self, query: SimilarQuery) -> tuple[str, SimilarItems | None]:
        version, answer = await self.answerer(query)
        assert not isinstance(answer, Result)
        return version, answer


Recommender = Answerer[Query, Result]
SimilarFinder = Answerer[SimilarQuery, SimilarItems | None]


def model_answerers(read_state: Callable[[], ServingState], store: EmbeddingStore,
                    batching: bool, max_batch_size: int, max_wait_s: float,
                    ) -> tuple[Recommender, SimilarFinder, BatchedAnswerer | None]:
    """The answerers of ``POST /recommend`` and ``GET /items/{id}/similar``: both submit to one
    micro-batcher (or, without batching, answer one query per call), so a batch may hold both
    kinds and is still one encoder call and one search. Also returns the batcher to start and
    close in the lifespan (``None`` without batching)."""
    answer = functools.partial(_answer_batch_with, store)
    shared: DirectAnswerer | BatchedAnswerer
    batched = None
    if batching:
        shared = batched = BatchedAnswerer(read_state, answer, max_batch_size, max_wait_s)
    else:
        shared = DirectAnswerer(read_state, answer)
    return _SessionAnswerer(shared), _ItemAnswerer(shared), batched


def _answer_batch_with(store: EmbeddingStore, state: ServingState,
                      queries: Sequence[ModelQuery]) -> list[ModelAnswer]:
    """:func:`service.recommender.answer_batch` with the store first (for ``partial``)."""
    return answer_batch(state, store, queries)

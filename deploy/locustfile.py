"""Load test of the recommendation API with realistic traffic.

Sessions are real: a random user's history from an interaction dataset, cut at a random point
(so session lengths and items follow the dataset's own distribution), the most recent
``--max-session`` items kept. Product pages are drawn by the same events, so popular items are
opened as often as they were bought. Every response is checked: status 200, ``k`` items, and
none of the session's items (``exclude_seen``) or, for ``/similar``, not the item itself.

    locust -f deploy/locustfile.py --host http://127.0.0.1:8000 --sessions-file \\
        ../shared/datasets/Beauty.txt --headless --users 32 --spawn-rate 32 --run-time 30s

Each user mixes ``POST /recommend`` (``--recommend-weight``, default 9) and
``GET /items/{id}/similar`` (``--similar-weight``, default 1). With ``--trivial`` every request is
the same ``POST /recommend`` body sent to ``POST /bench/trivial`` instead (a server started with
``BENCH_ENDPOINT=true``): the web stack's ceiling, with the same checks.

Users send back to back; ``--user-rate R`` makes each send R requests/s on average, a target rate
of users × R. With ``--arrivals poisson`` (the default) each user's request starts are a Poisson
process: exponential gaps, scheduled independently of the answers, as from many independent
shoppers. ``--arrivals constant`` is locust's ``constant_throughput``: a fixed gap after each
start, which keeps users that were answered by the same micro-batch in step (they all send again
at the same moment, a burst of up to users requests).

``--latency-out PATH`` writes every request's start time, latency and outcome as JSON when the
run ends (``bench/serving.py`` computes percentiles from it, unrounded).

The sessions file is the benchmark format (``user item item ...`` per line, in time order), a
``user,item,timestamp`` CSV, or a JSON list of sessions (lists of item ids).
"""

from __future__ import annotations

import csv
import json
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from locust import FastHttpUser, constant, constant_throughput, events
from locust.env import Environment

SESSIONS: list[list[str]] = []
EVENTS: list[tuple[int, int]] = []  # (session, position) of every event, to draw product pages
LATENCIES: list[tuple[float, float, bool, str]] = []  # start (s), latency (ms), ok, name


def read_sessions(path: Path) -> list[list[str]]:
    """Time-ordered item lists, one per user, from any of the three formats."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        return [[str(item) for item in session] for session in json.loads(text) if session]
    if path.suffix == ".csv":
        per_user: dict[str, list[tuple[float, int, str]]] = {}
        for order, row in enumerate(csv.reader(text.splitlines())):
            if len(row) != 3 or row[0].strip().lower() == "user":
                continue
            user, item, stamp = (cell.strip() for cell in row)
            try:
                when = float(stamp)
            except ValueError:
                when = float(order)  # ISO timestamps: file order
            per_user.setdefault(user, []).append((when, order, item))
        return [[item for _, _, item in sorted(rows)] for rows in per_user.values()]
    return [line.split()[1:] for line in text.splitlines() if len(line.split()) > 1]


@events.init_command_line_parser.add_listener
def _options(parser: Any) -> None:
    parser.add_argument("--sessions-file", default="../shared/datasets/Beauty.txt",
                        help="benchmark .txt, user,item,timestamp .csv or JSON sessions")
    parser.add_argument("--k", type=int, default=10, help="items asked for")
    parser.add_argument("--max-session", type=int, default=50, help="most recent items sent")
    parser.add_argument("--recommend-weight", type=int, default=9)
    parser.add_argument("--similar-weight", type=int, default=1)
    parser.add_argument("--trivial", action="store_true",
                        help="POST /bench/trivial only (BENCH_ENDPOINT=true)")
    parser.add_argument("--user-rate", type=float, default=0.0,
                        help="requests/s per user; 0: back to back")
    parser.add_argument("--arrivals", choices=("poisson", "constant"), default="poisson",
                        help="with --user-rate: exponential or fixed gaps between a user's starts")
    parser.add_argument("--latency-out", default="", help="write per-request latencies here")
    parser.add_argument("--seed", type=int, default=0)


@events.init.add_listener
def _load(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is None:
        return
    random.seed(options.seed)
    SESSIONS[:] = read_sessions(Path(options.sessions_file))
    EVENTS[:] = [(s, p) for s, session in enumerate(SESSIONS) for p in range(len(session))]
    ShopperUser.wait_time = wait_time(options.user_rate, options.arrivals)
    ShopperUser.tasks = ([ShopperUser.trivial] if options.trivial else
                         [ShopperUser.recommend] * options.recommend_weight
                         + [ShopperUser.similar] * options.similar_weight)


def wait_time(rate: float, arrivals: str) -> Callable[[Any], float]:
    """Locust's wait-time function of a user sending ``rate`` requests/s (0: back to back)."""
    if rate <= 0:
        return constant(0)
    if arrivals == "constant":
        return constant_throughput(rate)
    return poisson_arrivals(rate)


def poisson_arrivals(rate: float) -> Callable[[Any], float]:
    """Wait time that makes a user's request starts a Poisson process of ``rate`` per second:
    each start is scheduled an exponential gap after the previous *scheduled* start, so a slow
    answer delays a request only while it is still in flight (no user waits in step with
    others)."""

    def wait(user: Any) -> float:
        now = time.monotonic()
        scheduled = getattr(user, "_next_start", now) + random.expovariate(rate)
        user._next_start = scheduled
        return max(0.0, scheduled - now)

    return wait


@events.request.add_listener
def _record(request_type: str, name: str, response_time: float, exception: Any,
            start_time: float | None = None, **_: Any) -> None:
    start = start_time if start_time is not None else time.time() - response_time / 1000
    LATENCIES.append((start, response_time, exception is None, name))


@events.quitting.add_listener
def _write(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if options is not None and options.latency_out:
        Path(options.latency_out).write_text(json.dumps(LATENCIES))


def _session(options: Any) -> list[str]:
    """A random user's history cut at a random event: what they had seen by then."""
    history = random.choice(SESSIONS)
    return history[:random.randint(1, len(history))][-options.max_session:]


def _check_recommendation(response: Any, session: list[str], k: int) -> None:
    if response.status_code != 200:
        response.failure(f"status {response.status_code}: {response.text[:200]}")
        return
    items = [entry["item"] for entry in response.json()["items"]]
    if len(items) != k:
        response.failure(f"{len(items)} items, expected {k}")
    elif set(items) & set(session):
        response.failure("a session item was recommended (exclude_seen)")
    else:
        response.success()


class ShopperUser(FastHttpUser):
    """A visitor: mostly "recommended next" for the session, sometimes a product page."""

    wait_time = constant(0)

    def recommend(self, path: str = "/recommend") -> None:
        options = self.environment.parsed_options
        session = _session(options)
        with self.client.post(path, json={"session": session, "k": options.k},
                              catch_response=True) as response:
            _check_recommendation(response, session, options.k)

    def trivial(self) -> None:
        self.recommend("/bench/trivial")

    def similar(self) -> None:
        options = self.environment.parsed_options
        user, position = random.choice(EVENTS)
        item = SESSIONS[user][position]
        with self.client.get(f"/items/{item}/similar?k={options.k}", name="/items/{id}/similar",
                             catch_response=True) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            items = [entry["item"] for entry in response.json()["items"]]
            if len(items) != options.k or item in items:
                response.failure(f"{len(items)} items (expected {options.k}) or the item itself")
            else:
                response.success()

    tasks = [recommend] * 9 + [similar]

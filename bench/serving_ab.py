"""A/B of two source trees of the service under the same load, side by side.

A change to the serving path moves ``/recommend``'s throughput by a few percent, while this
machine's throughput drifts by more than that within minutes (servers of the *same* code gave
913 to 1128 requests/s in consecutive 25 s runs). So the two sides alternate, each pair in the
other order than the last (A B, B A, A B, ...), each run a fresh server of its tree under one
locust run; the report lists every run, each side's median and how many pairs B won.

    git worktree add /tmp/base HEAD~1
    python -m bench.serving_ab --a /tmp/base --b . --users 64 --rounds 6 --duration 20
    python -m bench.serving_ab --a /tmp/base --b . --trivial     # the web stack alone
    python -m bench.serving_ab --a /tmp/base --b . --rate 450    # p99 at a fixed rate
    python -m bench.serving_ab --a . --b . --b-set BATCH_MAX_WAIT_S=0.003 --rate 450  # a setting

``--rate`` replaces users sending back to back by a fixed total rate of Poisson arrivals over
``--half-peak-users`` users, as the ``half`` part of ``bench.serving`` runs it: the comparison of
latency at a load with headroom (its requests/s only confirm that both sides kept up).

The artifact, cores, batching settings and load options are those of ``bench.serving``.
"""

from __future__ import annotations

import json
import logging
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.machine import machine_info
from bench.serving import build_parser, core_count, ensure_artifact, run_locust, serve

log = logging.getLogger("bench.serving_ab")

SIDES = ("a", "b")


def run_order(rounds: int) -> list[str]:
    """The sides of ``rounds`` pairs: A B, B A, A B, ... (a steady drift favours neither)."""
    return [side for pair in range(rounds) for side in (SIDES if pair % 2 == 0 else SIDES[::-1])]


def compare(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each side's median requests/s and p99, B / A, and the pairs (runs ``2i``, ``2i + 1``)
    in which B was faster."""
    rps = {side: [run["rps"] for run in runs if run["side"] == side] for side in SIDES}
    p99 = {side: [run["p99_ms"] for run in runs if run["side"] == side
                  if run["p99_ms"] is not None] for side in SIDES}
    pairs = [{run["side"]: run["rps"] for run in runs[i:i + 2]}
             for i in range(0, len(runs) - 1, 2)]
    b_wins = sum(1 for pair in pairs if pair.get("b", 0) > pair.get("a", 0))
    p99_pairs = [{run["side"]: run["p99_ms"] for run in runs[i:i + 2]}
                 for i in range(0, len(runs) - 1, 2)]
    b_lower_p99 = sum(1 for pair in p99_pairs
                      if None not in (pair.get("a"), pair.get("b")) and pair["b"] < pair["a"])
    medians = {side: statistics.median(values) if values else None for side, values in rps.items()}
    return {
        "median_rps_a": medians["a"], "median_rps_b": medians["b"],
        "ratio_b_over_a": (medians["b"] / medians["a"]) if medians["a"] and medians["b"] else None,
        "median_p99_ms_a": statistics.median(p99["a"]) if p99["a"] else None,
        "median_p99_ms_b": statistics.median(p99["b"]) if p99["b"] else None,
        **{f"median_server_cpu_ms_{side}": _median([run.get("server_cpu_ms_per_request")
                                                    for run in runs if run["side"] == side])
           for side in SIDES},
        "pairs": len(pairs), "b_wins": b_wins, "b_lower_p99": b_lower_p99,
        "errors": sum(run["errors"] for run in runs),
    }


def markdown(payload: dict[str, Any]) -> str:
    summary = payload["summary"]
    lines = ["# Serving A/B", "", f"`{payload['command']}`", "",
             f"A: `{payload['a']}`, B: `{payload['b']}`"
             + "".join(f" {name}={value}" for name, value in payload.get("b_settings", {}).items())
             + f"; {payload['users']} users, "
             f"{payload['load']}, {payload['duration']:g} s measured per run after "
             f"{payload['warmup']:g} s of warm-up. Machine: {payload['machine'].get('cpu', '?')}.",
             "", "| run | side | requests/s | p50 ms | p99 ms | server CPU ms / request | errors |",
             "|---|---|---|---|---|---|---|"]
    for index, run in enumerate(payload["runs"]):
        lines.append(f"| {index} | {run['side'].upper()} | {run['rps']:.0f} | "
                     f"{_ms(run['p50_ms'])} | {_ms(run['p99_ms'])} | "
                     f"{_ms(run.get('server_cpu_ms_per_request'), 3)} | {run['errors']} |")
    ratio = summary["ratio_b_over_a"]
    lines += ["", f"Median requests/s: A {summary['median_rps_a']:.0f}, "
              f"B {summary['median_rps_b']:.0f}; B / A **{ratio:.3f}**; B faster in "
              f"{summary['b_wins']} of {summary['pairs']} pairs; {summary['errors']} errors.",
              "", f"Median p99: A {_ms(summary['median_p99_ms_a'])} ms, "
              f"B {_ms(summary['median_p99_ms_b'])} ms; B lower in "
              f"{summary.get('b_lower_p99', 0)} of {summary['pairs']} pairs. Median server CPU "
              f"per request: A {_ms(summary.get('median_server_cpu_ms_a'), 3)} ms, "
              f"B {_ms(summary.get('median_server_cpu_ms_b'), 3)} ms.", ""]
    return "\n".join(lines)


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def _ms(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser(__doc__)
    parser.add_argument("--a", type=Path, required=True, help="source tree A (e.g. a worktree)")
    parser.add_argument("--b", type=Path, default=Path("."), help="source tree B")
    parser.add_argument("--users", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=6, help="A/B pairs")
    parser.add_argument("--trivial", action="store_true",
                        help="load the trivial endpoint instead of the /recommend mix")
    parser.add_argument("--b-set", action="append", default=[], metavar="NAME=VALUE",
                        help="a setting (environment variable) of side B's server; repeatable")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="total requests/s, Poisson arrivals over --half-peak-users users "
                             "(0: --users sending back to back)")
    parser.set_defaults(work=Path("runs/serving-ab"), results=Path("runs/serving-ab"),
                        duration=20.0)
    args = parser.parse_args(argv)
    if not args.server_threads:
        args.server_threads = core_count(args.server_cores)
    args.artifact_dir = args.artifact_dir.resolve()  # both trees serve the same artifact
    b_settings = dict(setting.split("=", 1) for setting in args.b_set)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    ensure_artifact(args)
    args.work.mkdir(parents=True, exist_ok=True)
    load = ["--trivial"] if args.trivial else ["--similar-weight", str(args.similar_weight)]
    users = args.users
    if args.rate:
        users = args.half_peak_users
        load += ["--user-rate", f"{args.rate / users:.4f}", "--arrivals", "poisson"]
    runs = []
    for index, side in enumerate(run_order(args.rounds)):
        root = (args.a if side == "a" else args.b).resolve()
        with serve(args, True, args.work / f"server-{side}.log", root=root,
                   settings=b_settings if side == "b" else None) as (url, pid):
            record = run_locust(args, url, pid, users, f"{side}-{index}", load,
                                args.warmup + args.duration)
        runs.append({"side": side, **{key: record[key] for key in
                                      ("rps", "p50_ms", "p99_ms", "errors", "requests",
                                       "server_cpu_ms_per_request")}})
        log.info("run %d, %s (%s): %.0f requests/s", index, side.upper(), root, record["rps"])
    target = "trivial endpoint" if args.trivial else "the /recommend mix"
    payload = {"a": str(args.a), "b": str(args.b), "b_settings": b_settings, "users": users,
               "load": f"{target} at {args.rate:g} requests/s (Poisson)" if args.rate else target,
               "duration": args.duration, "warmup": args.warmup,
               "command": "python -m bench.serving_ab " + " ".join(
                   sys.argv[1:] if argv is None else argv),
               "machine": machine_info(server_cores=args.server_cores,
                                       client_cores=args.client_cores),
               "runs": runs, "summary": compare(runs),
               "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "serving_ab.json").write_text(json.dumps(payload, indent=2) + "\n")
    (args.results / "serving_ab.md").write_text(markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()

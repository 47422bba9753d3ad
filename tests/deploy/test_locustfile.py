"""The load generator's arrival processes, run in a subprocess (importing locust patches the
standard library with gevent, which must not happen inside the test process)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

GAPS = """
import importlib.util, json, random, sys, types
spec = importlib.util.spec_from_file_location("locustfile", "deploy/locustfile.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
random.seed(0)
wait = module.wait_time(float(sys.argv[1]), sys.argv[2])
user = types.SimpleNamespace()
waits = [wait(user) for _ in range(4000)]
starts = getattr(user, "_next_start", None)
print(json.dumps({"waits": waits[:5], "last": starts, "mean_wait": sum(waits) / len(waits)}))
"""


def _gaps(rate: float, arrivals: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", GAPS, str(rate), arrivals], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=120).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_poisson_arrivals_schedule_exponential_gaps_at_the_rate():
    """4000 back-to-back calls (no time passes between them): each wait is the schedule's lead,
    so the last scheduled start is the sum of 4000 exponential gaps of mean 1/rate."""
    result = _gaps(50.0, "poisson")
    waits = result["waits"]
    assert isinstance(waits, list) and waits[0] > 0
    assert len(set(waits)) == len(waits)  # random gaps, not a fixed period
    # the schedule runs ahead by the summed gaps: about 4000 / 50 = 80 s (sd ~1.3 s)
    mean_wait = result["mean_wait"]
    assert isinstance(mean_wait, float) and 70 < 2 * mean_wait < 90


def test_zero_rate_sends_back_to_back():
    result = _gaps(0.0, "poisson")
    assert result["waits"] == [0, 0, 0, 0, 0] and result["last"] is None

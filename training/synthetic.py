"""Synthetic interaction logs with real structure, for the demo and the tests.

Items belong to categories (``cat07-sku012``); inside a category they form a chain of typical
next purchases (item ``j`` → ``j + 1``). A user browses one or two categories, mostly following
the chain, sometimes jumping inside the category, rarely elsewhere. A good model learns the chain,
so its recommendations are visibly sensible: same category, next items along the chain.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class SyntheticSpec:
    num_users: int = 2000
    num_categories: int = 20
    items_per_category: int = 30
    min_length: int = 5
    max_length: int = 20
    p_next: float = 0.65  # follow the chain
    p_same_category: float = 0.25  # jump inside the category; the rest jumps anywhere
    seed: int = 0


def item_name(category: int, index: int) -> str:
    return f"cat{category:02d}-sku{index:03d}"


def generate_sessions(spec: SyntheticSpec) -> dict[str, list[str]]:
    """``{user: [item, ...]}`` in time order."""
    rng = np.random.default_rng(spec.seed)
    per_cat = spec.items_per_category
    start_weights = 1.0 / np.arange(1, per_cat + 1)  # popular entry points
    start_weights /= start_weights.sum()
    sessions: dict[str, list[str]] = {}
    for user in range(spec.num_users):
        interests = rng.choice(spec.num_categories, size=int(rng.integers(1, 3)), replace=False)
        category = int(interests[0])
        index = int(rng.choice(per_cat, p=start_weights))
        length = int(rng.integers(spec.min_length, spec.max_length + 1))
        items = []
        for _ in range(length):
            items.append(item_name(category, index))
            roll = rng.random()
            if roll < spec.p_next:
                index = (index + 1) % per_cat
            elif roll < spec.p_next + spec.p_same_category:
                index = int(rng.integers(per_cat))
            else:
                category = int(rng.choice(interests))
                index = int(rng.choice(per_cat, p=start_weights))
        sessions[f"user{user:05d}"] = items
    return sessions


def write_event_log(sessions: dict[str, list[str]], path: Path | str,
                    start_time: int = 1_700_000_000) -> Path:
    """Write ``user,item,timestamp`` rows (users interleaved, timestamps increasing per user)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "timestamp"])
        for offset, (user, items) in enumerate(sessions.items()):
            for step, item in enumerate(items):
                writer.writerow([user, item, start_time + offset + step * 3600])
    return path

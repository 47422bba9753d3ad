"""Interaction data: readers, k-core filtering, id mapping and the leave-one-out split.

Two input formats are understood:

* the benchmark format of S3-Rec / CL4SRec / ICLRec: one line per user, ``user item item ...``
  in time order (already k-core filtered);
* raw event logs: a CSV with ``user,item,timestamp`` columns (header optional), any id strings.

Both end up as an :class:`Interactions`: external ids mapped to internal items ``1..N`` (``0`` is
padding) and one time-ordered sequence per user.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


class DataFormatError(ValueError):
    """A malformed input file; the message names the file, the line and the reason."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(f"{path}:{line}: {reason}")
        self.path = str(path)
        self.line = line
        self.reason = reason


@dataclass(frozen=True)
class Event:
    user: str
    item: str
    timestamp: float


@dataclass
class Interactions:
    """Time-ordered user sequences over internal item ids.

    ``item_ids[i]`` is the external id of internal item ``i`` (``item_ids[0]`` is the padding
    placeholder ``""``); ``sequences[u]`` is user ``user_ids[u]``'s history, oldest first.
    """

    user_ids: list[str]
    item_ids: list[str]
    sequences: list[np.ndarray]

    @property
    def num_items(self) -> int:
        return len(self.item_ids) - 1

    @property
    def num_users(self) -> int:
        return len(self.user_ids)

    @property
    def num_interactions(self) -> int:
        return int(sum(len(s) for s in self.sequences))


def read_sequence_file(path: Path | str) -> dict[str, list[str]]:
    """Read the benchmark format: ``user item item ...`` per line, items in time order."""
    sequences: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DataFormatError(path, line_no, "expected 'user item [item ...]', got a user "
                                      "with no items")
            user = fields[0]
            if user in sequences:
                raise DataFormatError(path, line_no, f"user {user!r} appears on more than one line")
            sequences[user] = fields[1:]
    if not sequences:
        raise DataFormatError(path, 0, "file holds no sequences")
    return sequences


def read_event_log(path: Path | str) -> list[Event]:
    """Read a ``user,item,timestamp`` CSV (header optional; timestamps numeric or ISO 8601)."""
    events: list[Event] = []
    with open(path, encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row):
                continue
            header = [c.strip().lower() for c in row[:3]] == ["user", "item", "timestamp"]
            if line_no == 1 and header:
                continue
            if len(row) != 3:
                raise DataFormatError(path, line_no, f"expected 3 columns user,item,timestamp, "
                                      f"got {len(row)}")
            user, item, raw_ts = (cell.strip() for cell in row)
            if not user or not item:
                raise DataFormatError(path, line_no, "empty user or item id")
            events.append(Event(user, item, _parse_timestamp(raw_ts, path, line_no)))
    if not events:
        raise DataFormatError(path, 0, "file holds no events")
    return events


def _parse_timestamp(raw: str, path: Path | str, line_no: int) -> float:
    try:
        return float(raw)
    except ValueError:
        pass
    from datetime import datetime

    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        raise DataFormatError(path, line_no, f"timestamp {raw!r} is neither a number nor "
                              "ISO 8601") from None


def sequences_from_events(events: Iterable[Event]) -> dict[str, list[str]]:
    """Group events per user in time order (ties keep file order)."""
    per_user: dict[str, list[tuple[float, int, str]]] = {}
    for order, event in enumerate(events):
        per_user.setdefault(event.user, []).append((event.timestamp, order, event.item))
    return {user: [item for _, _, item in sorted(rows)] for user, rows in per_user.items()}


def k_core(sequences: dict[str, list[str]], k: int) -> dict[str, list[str]]:
    """Repeatedly drop users and items with fewer than ``k`` interactions."""
    if k <= 1:
        return {u: list(s) for u, s in sequences.items() if s}
    current = {u: list(s) for u, s in sequences.items()}
    while True:
        item_counts = Counter(item for seq in current.values() for item in seq)
        filtered = {u: [i for i in s if item_counts[i] >= k] for u, s in current.items()}
        filtered = {u: s for u, s in filtered.items() if len(s) >= k}
        if filtered == current:
            return filtered
        current = filtered


def index_items(sequences: dict[str, list[str]]) -> Interactions:
    """Map external ids to internal ``1..N``: numeric order if all ids are integers, else first
    appearance, so the mapping is deterministic for a given input."""
    seen: dict[str, None] = {}
    for seq in sequences.values():
        for item in seq:
            seen.setdefault(item, None)
    external = list(seen)
    if all(item.isdigit() for item in external):
        external.sort(key=int)
    lookup = {item: index for index, item in enumerate(external, start=1)}
    users = list(sequences)
    encoded = [np.fromiter((lookup[i] for i in sequences[u]), dtype=np.int64) for u in users]
    return Interactions(user_ids=users, item_ids=["", *external], sequences=encoded)


def read_sequences(path: Path | str) -> dict[str, list[str]]:
    """Each user's items in time order, from either format, chosen by extension (``.csv`` is an
    event log)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no data file at {path}")
    if path.suffix.lower() == ".csv":
        return sequences_from_events(read_event_log(path))
    return read_sequence_file(path)


def load_interactions(path: Path | str, k: int = 5) -> Interactions:
    """Load either format (:func:`read_sequences`), k-core filter, index the items."""
    return index_items(k_core(read_sequences(path), k))


@dataclass
class EvalSet:
    """Inputs and targets for one evaluation split.

    ``histories[u]`` is everything the user did before the target (masked out of the ranking);
    the model reads its last ``L`` items.
    """

    user_index: np.ndarray  # [U] row into Interactions.sequences
    histories: list[np.ndarray]
    targets: np.ndarray  # [U]


@dataclass
class LeaveOneOutSplit:
    """Last item → test, second to last → validation, the rest → training."""

    train: list[np.ndarray]
    valid: EvalSet
    test: EvalSet
    num_items: int
    dropped_users: int


def leave_one_out(data: Interactions) -> LeaveOneOutSplit:
    """Split every user with at least 3 interactions; shorter users cannot be evaluated and are
    dropped (their count is reported)."""
    keep = np.array([i for i, s in enumerate(data.sequences) if len(s) >= 3], dtype=np.int64)
    seqs = [data.sequences[i] for i in keep]
    train = [s[:-2] for s in seqs]
    valid = EvalSet(keep, [s[:-2] for s in seqs], np.array([s[-2] for s in seqs], dtype=np.int64))
    test = EvalSet(keep, [s[:-1] for s in seqs], np.array([s[-1] for s in seqs], dtype=np.int64))
    return LeaveOneOutSplit(train, valid, test, data.num_items, data.num_users - len(keep))


def item_popularity(sequences: Sequence[np.ndarray], num_items: int) -> np.ndarray:
    """Interaction counts per internal item ``[N+1]`` (index 0 stays 0)."""
    counts = np.zeros(num_items + 1, dtype=np.int64)
    if sequences:
        np.add.at(counts, np.concatenate(sequences), 1)
    counts[0] = 0
    return counts

"""Session → query vector, behind a "list of sessions in, same-length list of queries out" call,
which micro-batching (:mod:`service.batching`) feeds with concurrent requests.

A batch is right-padded to its longest session, and live sessions are mostly short with a long
tail (on Beauty: median 4 items, p99 26, up to ``L`` = 50), so one long session can multiply the
work of a whole batch. On the CPU, where the cost grows with the padded tokens, the batch is
therefore cut into groups of similar length (sorted, then split where a group's padding costs more
than one more encoder call); on a GPU, where padding is almost free, it runs as one call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.session_encoder import SessionEncoder

#: On the CPU, one more encoder call costs about as much as this many padded positions (measured:
#: a call of 1 × 5 positions 1.8 ms, 32 × 50 positions 28 ms).
CPU_CALL_COST_POSITIONS = 100


@dataclass(frozen=True)
class EncoderInput:
    """One session, already cut to the encoder's ``L`` most recent items."""

    item_ids: np.ndarray  # [l] int64 internal indices, 1 <= l <= L
    graph_rows: np.ndarray | None  # [l, d] float32 graph-view rows (None without the graph view)


class QueryEncoder:
    """Runs a :class:`SessionEncoder` (eval mode, on its device) over a list of sessions.

    Args:
        call_cost_positions: what one more encoder call costs, in padded positions; batches are
            split into length groups when that saves work. ``None``: the CPU's figure on a CPU
            device, never split elsewhere.
    """

    def __init__(self, encoder: SessionEncoder, device: torch.device,
                 call_cost_positions: float | None = None) -> None:
        self.encoder = encoder.to(device).eval()
        self.device = device
        self.max_len = encoder.max_len
        if call_cost_positions is None:
            call_cost_positions = CPU_CALL_COST_POSITIONS if device.type == "cpu" else float("inf")
        self.call_cost_positions = call_cost_positions

    def __call__(self, sessions: Sequence[EncoderInput]) -> list[np.ndarray]:
        """One query ``[D]`` float32 per session, in order (``D`` = 2d with the graph view)."""
        queries: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(sessions)
        for group in length_groups([len(s.item_ids) for s in sessions],
                                   self.call_cost_positions):
            for row, query in zip(group, self._encode([sessions[i] for i in group]),
                                  strict=True):
                queries[row] = query
        return queries

    @torch.inference_mode()
    def _encode(self, sessions: Sequence[EncoderInput]) -> list[np.ndarray]:
        """One encoder call over ``sessions``, right-padded to the longest."""
        width = max(len(s.item_ids) for s in sessions)
        item_ids = np.zeros((len(sessions), width), dtype=np.int64)  # [B L], right-padded
        for row, session in enumerate(sessions):
            item_ids[row, :len(session.item_ids)] = session.item_ids
        lengths = torch.tensor([len(s.item_ids) for s in sessions], device=self.device)  # [B]
        graph = None
        if self.encoder.use_graph_view:
            rows = np.zeros((len(sessions), width, self.encoder.dim), dtype=np.float32)  # [B L d]
            for row, session in enumerate(sessions):
                assert session.graph_rows is not None
                rows[row, :len(session.graph_rows)] = session.graph_rows
            graph = torch.from_numpy(rows).to(self.device)
        query = self.encoder(torch.from_numpy(item_ids).to(self.device), graph, lengths)  # [B D]
        return list(query.float().cpu().numpy())


def length_groups(lengths: Sequence[int], call_cost: float) -> list[list[int]]:
    """Partition the positions of ``lengths`` into groups (each group one encoder call, padded to
    its longest session) minimising ``calls × call_cost + padded positions``; exact, by dynamic
    programming over the distinct lengths in sorted order. Groups come out shortest first."""
    if not lengths:
        return []
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if call_cost == float("inf"):
        return [order]
    values = sorted(set(lengths))
    counts = [0] * len(values)
    slot = {value: i for i, value in enumerate(values)}
    for length in lengths:
        counts[slot[length]] += 1
    before = [0]  # sessions shorter than values[i]
    for count in counts:
        before.append(before[-1] + count)
    # best[j]: cheapest cover of the sessions with the j shortest distinct lengths
    best = [0.0] + [float("inf")] * len(values)
    cut = [0] * (len(values) + 1)
    for j in range(1, len(values) + 1):
        for i in range(j):
            cost = best[i] + call_cost + (before[j] - before[i]) * values[j - 1]
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bounds = []
    j = len(values)
    while j > 0:
        bounds.append((before[cut[j]], before[j]))
        j = cut[j]
    return [order[start:stop] for start, stop in reversed(bounds)]

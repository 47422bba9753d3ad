"""Session → query vector, behind a "list of sessions in, same-length list of queries out" call,
which micro-batching (:mod:`service.batching`) feeds with concurrent requests.

A batch is one encoder call over the sessions' items packed back to back
(:meth:`model.session_encoder.SessionEncoder.forward_packed`). Live sessions are mostly short with
a long tail (on Beauty: median 4 items, p99 26, up to ``L`` = 50), so only attention pads them to
the longest, and one long session costs its own items in every dense product, not a whole padded
batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from model.session_encoder import SessionEncoder


@dataclass(frozen=True)
class EncoderInput:
    """One session, already cut to the encoder's ``L`` most recent items."""

    item_ids: np.ndarray  # [l] int64 internal indices, 1 <= l <= L
    graph_rows: np.ndarray | None  # [l, d] float32 graph-view rows (None without the graph view)


class QueryEncoder:
    """Runs a :class:`SessionEncoder` (eval mode, on its device) over a list of sessions."""

    def __init__(self, encoder: SessionEncoder, device: torch.device) -> None:
        self.encoder = encoder.to(device).eval()
        self.fuse = self.encoder.inference_fusion()  # both fusions as one computation
        self.device = device
        self.max_len = encoder.max_len

    @torch.inference_mode()
    def __call__(self, sessions: Sequence[EncoderInput]) -> np.ndarray:
        """Queries ``[B, D]`` float32, one row per session in order (``D`` = 2d with the graph
        view): one encoder call over the sessions' items packed back to back."""
        lengths = torch.tensor([len(s.item_ids) for s in sessions], device=self.device)  # [B]
        item_ids = torch.from_numpy(np.concatenate([s.item_ids for s in sessions]))  # [T]
        graph = None
        if self.encoder.use_graph_view:
            rows = [s.graph_rows for s in sessions]
            assert all(r is not None for r in rows)
            graph = torch.from_numpy(np.concatenate(rows)).to(self.device)  # type: ignore[arg-type]
        h_id, h_graph = self.encoder.last_views(item_ids.to(self.device), graph, lengths)
        query = self.fuse(h_id, h_graph)  # [B D]
        return query.float().cpu().numpy()

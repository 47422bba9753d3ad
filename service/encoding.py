"""Session → query vector, behind a "list of sessions in, same-length list of queries out" call,
which micro-batching (:mod:`service.batching`) feeds with concurrent requests.

A batch is one encoder call. It is right-padded to its longest session, but live sessions are
mostly short with a long tail (on Beauty: median 4 items, p99 26, up to ``L`` = 50), so the encoder
packs the real items before its dense products
(:meth:`model.transformer.SequenceTransformer.forward_last`) and one long session costs its own
items, not a whole padded batch.
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
        self.device = device
        self.max_len = encoder.max_len

    @torch.inference_mode()
    def __call__(self, sessions: Sequence[EncoderInput]) -> list[np.ndarray]:
        """One query ``[D]`` float32 per session, in order (``D`` = 2d with the graph view):
        one encoder call over the sessions right-padded to the longest."""
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

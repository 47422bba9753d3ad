"""Session encoder: everything that turns a live session into a query vector.

This is the part exported to the service: the ID table, the two sequence transformers and the two
fusions. The graph-view item rows are an *input* (the service reads them from Redis, training
computes them by propagation), so the same module gives identical queries in both places.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from model.fusion import AttentionFusion, PairedAttentionFusion, make_fusion
from model.transformer import SequenceTransformer


class SessionEncoder(nn.Module):
    """ID view + optional graph view, each read by its own causal transformer, then fused.

    Args:
        num_items: ``N``; the ID table has ``N + 2`` rows (``0`` padding, ``N + 1`` the mask
            token used by the mask augmentation).
        dim: ``d``.
        max_len: ``L``, the longest session read (older items are cut).
        use_graph_view: ``False`` gives SASRec (ID view only, query ``d`` wide).
        share_transformer: one transformer reads both views.
        fusion: ``"attention"``, ``"mlp"`` or ``"add"``.

    Shapes:
        - input: ``item_ids [B, L]`` right-padded with 0, ``graph_rows [B, L, d]`` (the graph-view
          embeddings of those items), ``lengths [B]``
        - output: query ``[B, 2d]`` (``[B, d]`` without the graph view), scored by inner product
          against the fused item table ``[g_i ; e_i]``
    """

    def __init__(self, num_items: int, dim: int = 64, max_len: int = 50, num_layers: int = 2,
                 num_heads: int = 2, ffn_dim: int = 256, dropout: float = 0.3,
                 use_graph_view: bool = True, share_transformer: bool = False,
                 fusion: str = "attention") -> None:
        super().__init__()
        self.num_items = num_items
        self.dim = dim
        self.max_len = max_len
        self.use_graph_view = use_graph_view
        self.item_embedding = nn.Embedding(num_items + 2, dim, padding_idx=0)
        self.id_transformer = SequenceTransformer(dim, max_len, num_layers, num_heads, ffn_dim,
                                                  dropout)
        if use_graph_view:
            self.graph_transformer = (self.id_transformer if share_transformer else
                                      SequenceTransformer(dim, max_len, num_layers, num_heads,
                                                          ffn_dim, dropout))
            self.fuse_graph = make_fusion(fusion, dim)  # u_g = fuse(h_graph, h_id)
            self.fuse_id = make_fusion(fusion, dim)  # u_e = fuse'(h_id, h_graph)
        self.apply(_init_weights)
        for module in self.modules():
            reset_gate = getattr(module, "reset_gate", None)
            if module is not self and callable(reset_gate):
                reset_gate()

    @property
    def mask_token(self) -> int:
        return self.num_items + 1

    @property
    def query_dim(self) -> int:
        return 2 * self.dim if self.use_graph_view else self.dim

    def encode_views(self, item_ids: Tensor, graph_rows: Tensor | None,
                     ) -> tuple[Tensor, Tensor | None]:
        """Per-position session vectors of both views: ``h_id [B L d]``, ``h_graph [B L d]``."""
        h_id = self.id_transformer(self.item_embedding(item_ids))
        if not self.use_graph_view:
            return h_id, None
        if graph_rows is None:
            raise ValueError("graph_rows are required when the graph view is on")
        return h_id, self.graph_transformer(graph_rows)

    def fuse(self, h_id: Tensor, h_graph: Tensor | None) -> Tensor:
        """Query ``[*, 2d]`` = ``[u_g ; u_e]`` (``h_id`` itself without the graph view)."""
        if h_graph is None:
            return h_id
        return torch.cat([self.fuse_graph(h_graph, h_id), self.fuse_id(h_id, h_graph)], dim=-1)

    def inference_fusion(self) -> Callable[[Tensor, Tensor | None], Tensor]:
        """:meth:`fuse` as a frozen inference computation: with attention fusion, both fusions
        as one (:class:`model.fusion.PairedAttentionFusion`, weights copied now); otherwise
        :meth:`fuse` itself."""
        fusions = (getattr(self, "fuse_graph", None), getattr(self, "fuse_id", None))
        if all(isinstance(fusion, AttentionFusion) for fusion in fusions):
            paired = PairedAttentionFusion(*fusions)  # type: ignore[arg-type]

            def fuse(h_id: Tensor, h_graph: Tensor | None) -> Tensor:
                assert h_graph is not None
                return paired(h_id, h_graph)
            return fuse
        return self.fuse

    def forward(self, item_ids: Tensor, graph_rows: Tensor | None, lengths: Tensor) -> Tensor:
        lengths = lengths.clamp(min=1)
        if not self.training:
            valid = torch.arange(item_ids.size(1), device=item_ids.device) < lengths[:, None]
            return self.forward_packed(item_ids[valid],
                                       None if graph_rows is None else graph_rows[valid], lengths)
        h_id_all, h_graph_all = self.encode_views(item_ids, graph_rows)
        last = lengths - 1
        rows = torch.arange(item_ids.size(0), device=item_ids.device)
        return self.fuse(h_id_all[rows, last],
                         None if h_graph_all is None else h_graph_all[rows, last])

    def forward_packed(self, item_ids: Tensor, graph_rows: Tensor | None, lengths: Tensor,
                       ) -> Tensor:
        """Queries ``[B, D]`` of sessions packed back to back (no padding anywhere): see
        :meth:`last_views`."""
        return self.fuse(*self.last_views(item_ids, graph_rows, lengths))

    def last_views(self, item_ids: Tensor, graph_rows: Tensor | None, lengths: Tensor,
                   ) -> tuple[Tensor, Tensor | None]:
        """Both views' vectors at each session's last position, ``h_id [B, d]`` and
        ``h_graph [B, d]`` (``None`` without the graph view), from sessions packed back to back:
        ``item_ids [T]``, ``graph_rows [T, d]``, ``lengths [B]`` (each >= 1). Only the last
        positions are computed (see :meth:`SequenceTransformer.forward_last`); a shared
        transformer reads both views in one call."""
        x_id = self.item_embedding(item_ids)  # [T d]
        if not self.use_graph_view:
            return self.id_transformer.forward_last(x_id, lengths), None
        if graph_rows is None:
            raise ValueError("graph_rows are required when the graph view is on")
        if self.graph_transformer is self.id_transformer:
            both = self.id_transformer.forward_last(torch.cat([x_id, graph_rows]),
                                                    torch.cat([lengths, lengths]))  # [2B d]
            h_id, h_graph = both.chunk(2)
            return h_id, h_graph
        return (self.id_transformer.forward_last(x_id, lengths),
                self.graph_transformer.forward_last(graph_rows, lengths))


def _init_weights(module: nn.Module) -> None:
    """Truncated-normal(0.02) linears and embeddings, as in BERT / SASRec implementations."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.padding_idx is not None:
            with torch.no_grad():
                module.weight[module.padding_idx].zero_()

"""MVCrec: ID-view and graph-view contrastive learning with multi-view attention fusion.

"ID and Graph View Contrastive Learning with Multi-View Attention Fusion for Sequential
Recommendation", arXiv 2604.14114.

NOTE: departures from the authors' code, all deliberate (see DESIGN.md §7): the transformers are
causal and every prefix of a sequence is trained in one pass; graph propagation is sparse
(torch-geometric) and runs once per step; the fusion gate is a real sigmoid gate; contrastive
terms use cosine similarity with a temperature; augmentations work on copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from model.graph import ItemGraphPropagation
from model.losses import info_nce
from model.session_encoder import SessionEncoder


class MVCRec(nn.Module):
    """Session encoder + graph item table + LightGCN propagation + the training losses.

    With ``use_graph_view=False`` and ``cl_weight=0`` this is SASRec trained with full
    cross-entropy over every position.

    Args:
        encoder: the exported part (ID table, transformers, fusions).
        graph_source: ``"own"`` propagates a separate table ``G0`` (the paper's design), ``"id"``
            propagates the ID table itself.
        graph_layers / graph_combine: LightGCN depth ``K`` and layer combination.
        cl_weight: ``λ``; cl_temperature: ``τ``; cl_terms: which of ``seq``, ``graph``,
            ``cross`` are on.

    Shapes:
        - adjacency: normalised ``[N+1, N+1]`` sparse
        - ``inputs``/``targets``: ``[B, L]`` right-padded with 0
        - ``augmented``: ``[2B, L']`` (two views stacked), ``augmented_lengths [2B]``
    """

    def __init__(self, encoder: SessionEncoder, graph_source: str = "own", graph_layers: int = 2,
                 graph_combine: str = "mean", cl_weight: float = 0.1,
                 cl_temperature: float = 0.2,
                 cl_terms: tuple[str, ...] = ("seq", "graph", "cross")) -> None:
        super().__init__()
        if graph_source not in ("own", "id"):
            raise ValueError(f"graph_source must be 'own' or 'id', got {graph_source!r}")
        unknown = set(cl_terms) - {"seq", "graph", "cross"}
        if unknown:
            raise ValueError(f"unknown contrastive terms {sorted(unknown)}")
        self.encoder = encoder
        self.graph_source = graph_source
        self.cl_weight = cl_weight
        self.cl_temperature = cl_temperature
        self.cl_terms = tuple(t for t in cl_terms if encoder.use_graph_view or t == "seq")
        num_items, dim = encoder.num_items, encoder.dim
        if encoder.use_graph_view:
            if graph_source == "own":
                self.graph_table = nn.Embedding(num_items + 1, dim, padding_idx=0)
                nn.init.trunc_normal_(self.graph_table.weight, std=0.02)
                with torch.no_grad():
                    self.graph_table.weight[0].zero_()
            self.graph_mask = nn.Parameter(torch.zeros(dim).normal_(std=0.02))
            self.propagation = ItemGraphPropagation(graph_layers, graph_combine)

    @property
    def num_items(self) -> int:
        return self.encoder.num_items

    def graph_item_embeddings(self, adj: Tensor | None) -> Tensor | None:
        """Graph-view item embeddings ``g [N+1, d]`` (``None`` without the graph view)."""
        if not self.encoder.use_graph_view:
            return None
        if adj is None:
            raise ValueError("the graph view needs the item adjacency")
        if self.graph_source == "own":
            base = self.graph_table.weight
        else:
            base = self.encoder.item_embedding.weight[: self.num_items + 1]
        return self.propagation(base, adj)

    def item_table(self, g: Tensor | None) -> Tensor:
        """Fused item embeddings ``[N+1, 2d]`` = ``[g_i ; e_i]`` (``[N+1, d]`` = ``e_i`` alone)."""
        e = self.encoder.item_embedding.weight[: self.num_items + 1]
        return e if g is None else torch.cat([g, e], dim=-1)

    def graph_rows(self, g: Tensor | None, item_ids: Tensor) -> Tensor | None:
        """Graph-view rows of a batch of sequences ``[B, L, d]``; the mask token has its own."""
        if g is None:
            return None
        return torch.cat([g, self.graph_mask[None]])[item_ids]

    def calculate_loss(self, inputs: Tensor, targets: Tensor, adj: Tensor | None,
                       augmented: Tensor | None = None,
                       augmented_lengths: Tensor | None = None) -> dict[str, Tensor]:
        """Cross-entropy over all items at every valid position, plus ``λ`` × contrastive terms.

        Returns the named terms and their weighted sum under ``"loss"``.
        """
        g = self.graph_item_embeddings(adj)
        h_id, h_graph = self.encoder.encode_views(inputs, self.graph_rows(g, inputs))
        valid = targets > 0  # [B L]
        query = self.encoder.fuse(h_id[valid], None if h_graph is None else h_graph[valid])
        logits = query @ self.item_table(g).T  # [P N+1]
        losses = {"ce": F.cross_entropy(logits.float(), targets[valid])}
        total = losses["ce"]
        if self.cl_weight > 0 and self.cl_terms and augmented is not None:
            assert augmented_lengths is not None
            contrastive = self._contrastive_terms(g, augmented, augmented_lengths)
            losses.update(contrastive)
            total = total + self.cl_weight * sum(contrastive.values())
        losses["loss"] = total
        return losses

    def _contrastive_terms(self, g: Tensor | None, augmented: Tensor, lengths: Tensor,
                           ) -> dict[str, Tensor]:
        """InfoNCE between the two stacked augmentations' last-position vectors."""
        h_id, h_graph = self.encoder.encode_views(augmented, self.graph_rows(g, augmented))
        rows = torch.arange(augmented.size(0), device=augmented.device)
        last = lengths - 1
        z_id = h_id[rows, last].float()  # [2B d]
        half = z_id.size(0) // 2
        terms: dict[str, Tensor] = {}
        if "seq" in self.cl_terms:
            terms["cl_seq"] = info_nce(z_id[:half], z_id[half:], self.cl_temperature)
        if h_graph is not None:
            z_graph = h_graph[rows, last].float()  # [2B d]
            if "graph" in self.cl_terms:
                terms["cl_graph"] = info_nce(z_graph[:half], z_graph[half:], self.cl_temperature)
            if "cross" in self.cl_terms:
                terms["cl_cross"] = info_nce(z_graph[:half], z_id[half:], self.cl_temperature)
        return terms

    def full_sort_predict(self, item_ids: Tensor, lengths: Tensor, g: Tensor | None,
                          table: Tensor) -> Tensor:
        """Scores of every item for each session ``[B, N+1]``; ``g`` and ``table`` come from
        :meth:`graph_item_embeddings` and :meth:`item_table`, computed once per evaluation."""
        query = self.encoder(item_ids, self.graph_rows(g, item_ids), lengths)  # [B D]
        return query @ table.T
